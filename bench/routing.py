"""What finding a request's route costs an API process: the hub's routers
put in the app's own route list (`vaxhub.hub.api.flat_routes`, what the hub
does) against the same routers added with `app.include_router` (FastAPI's
way, which keeps each router as one entry and matches through it twice).

Each request of the national load's kinds (and `/healthz`) is sent with no
token straight to the app's router, without the middleware, so it stops at
the first dependency that refuses it (no token) or, for `/healthz`, at its
trivial answer: the same work after routing in both apps, so the difference
per request is routing. (The certificate routes are left out: they audit a
refused request in the database before answering, which costs ten times
what routing does and varies more than it.) Blocks of each app alternate so
both see the same machine; the medians are printed in microseconds of this
process's CPU. Both apps keep their database and keys in a temporary folder.

    .venv/bin/python bench/routing.py [--requests 2000] [--blocks 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from unittest import mock

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from fastapi import FastAPI  # noqa: E402
from starlette.exceptions import HTTPException  # noqa: E402

from vaxhub.errors import VaxhubError  # noqa: E402
from vaxhub.hub import app as app_module  # noqa: E402
from vaxhub.settings import load_settings  # noqa: E402

REQUESTS = [  # (method, path) as the load test sends them
    ("POST", "/fhir"),
    ("POST", "/hl7v2"),
    ("GET", "/fhir/Patient/0190a2b3c4d5/$everything"),
    ("GET", "/healthz"),
]


def build(folder: Path, flat: bool) -> FastAPI:
    folder.mkdir()
    settings = load_settings().model_copy(update={"database_url": f"sqlite:///{folder / 'hub.db'}", "data_dir": folder})
    if flat:
        return app_module.build_app(settings)
    included = lambda app, router: app.include_router(router)  # noqa: E731
    with mock.patch.object(app_module, "add_routes", included), mock.patch("vaxhub.hub.web.add_routes", included):
        return app_module.build_app(settings)


async def _one(app: FastAPI, method: str, path: str) -> int | str:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"", "headers": [],
             "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000), "app": app, "state": {}}
    status = 0

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    async with AsyncExitStack() as files:  # what FastAPI's own middleware would hand the route
        scope["fastapi_middleware_astack"] = files
        try:
            await app.router(scope, receive, send)
        except (HTTPException, VaxhubError) as refused:  # the app's exception handlers, outside the router, would answer
            status = refused.status_code if isinstance(refused, HTTPException) else type(refused).__name__
    return status


def cpu_per_request(app: FastAPI, method: str, path: str, requests: int) -> tuple[float, int | str]:
    async def run() -> int | str:
        status: int | str = 0
        for _ in range(requests):
            status = await _one(app, method, path)
        return status

    started = time.process_time()
    status = asyncio.run(run())
    return (time.process_time() - started) / requests * 1e6, status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="requests of each kind per block")
    parser.add_argument("--blocks", type=int, default=5, help="alternating blocks per app; the median is shown")
    args = parser.parse_args()
    console = Console(width=150)
    with tempfile.TemporaryDirectory() as folder:
        apps = {"flat": build(Path(folder) / "flat", True), "included": build(Path(folder) / "included", False)}
        table = Table(title=f"CPU µs per request up to its first refusal, median of {args.blocks} blocks of {args.requests:,}")
        for column in ("request", "status", "flat (the hub)", "include_router", "included / flat", "saved µs"):
            table.add_column(column, justify="right" if column != "request" else "left")
        for method, path in REQUESTS:
            results: dict[str, list[float]] = {"flat": [], "included": []}
            statuses = set()
            for _ in range(args.blocks):
                for name, app in apps.items():
                    micros, status = cpu_per_request(app, method, path, args.requests)
                    results[name].append(micros)
                    statuses.add(status)
            flat, included = statistics.median(results["flat"]), statistics.median(results["included"])
            table.add_row(f"{method} {path}", "/".join(map(str, sorted(statuses))), f"{flat:,.0f}", f"{included:,.0f}",
                          f"{included / flat:.2f}", f"{included - flat:,.0f}")
        console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
