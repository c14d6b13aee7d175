"""Progress reports from long backup and restore steps, kept free of any UI."""

from __future__ import annotations

from typing import BinaryIO, Callable, Protocol


class Progress(Protocol):
    def __call__(self, step: str, done: int, total: int | None) -> None:
        """`step` names what is running ("copying database"); `done` of `total` units (None: unknown)."""


def no_progress(step: str, done: int, total: int | None) -> None:
    return None


class CountingReader:
    """A file wrapper that reports how many bytes were read through it."""

    def __init__(self, raw: BinaryIO, report: Callable[[int], None]):
        self.raw = raw
        self.report = report
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.count += len(data)
        self.report(self.count)
        return data
