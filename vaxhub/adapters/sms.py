"""SMS sending: the port and the adapters that ship with the hub.

`ConsoleSms` prints messages on the terminal (the demo's stand-in for a
phone: one-time codes are secrets, so they go to the console, never to the
logs); `RecordingSms` keeps them in memory for tests. A real gateway adapter
implements the same one-method port.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from typing import Protocol, TextIO


class SmsSender(Protocol):
    def send(self, phone: str, text: str) -> None: ...


@dataclass
class ConsoleSms:
    stream: TextIO = sys.stderr

    def send(self, phone: str, text: str) -> None:
        print(f"[SMS to {phone}] {text}", file=self.stream, flush=True)


@dataclass
class RecordingSms:
    """Keeps every message; `last_to(phone)` returns the newest one for a number."""

    messages: list[tuple[str, str]] = field(default_factory=list)
    echo: SmsSender | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def send(self, phone: str, text: str) -> None:
        with self._lock:
            self.messages.append((phone, text))
        if self.echo is not None:
            self.echo.send(phone, text)

    def last_to(self, phone: str) -> str | None:
        with self._lock:
            for to, text in reversed(self.messages):
                if to == phone:
                    return text
        return None
