"""Run a coroutine on an event loop of its own thread: the test's thread may
already be running one (a browser test's Playwright session on the same
pytest worker keeps it), and `asyncio.run` refuses to start a second."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable


def run_on_own_loop(make: Callable[[], Awaitable[Any]]) -> Any:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()  # type: ignore[arg-type]
