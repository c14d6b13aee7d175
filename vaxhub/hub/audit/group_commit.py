"""Group commit: items that threads submit at the same time are written in one
transaction, and each thread returns only once its own item is committed.

Reads record their AuditEvent in a transaction of their own before the
response leaves. One transaction per read costs a BEGIN, a chain-head lock,
a statement and a COMMIT (a WAL flush) each; under load many reads of one
process finish within a few milliseconds of each other. There is no timer
and no background thread: the first thread to find no commit running
writes everything waiting (its own item included); threads arriving
meanwhile wait, and when that commit ends one of them writes the next batch.
A lone request is committed at once, as before.
"""

from __future__ import annotations

import threading
from typing import Callable, Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class _Waiter(Generic[Item, Result]):
    __slots__ = ("item", "done", "result", "error")

    def __init__(self, item: Item):
        self.item = item
        self.done = False
        self.result: Result | None = None
        self.error: BaseException | None = None


class GroupCommit(Generic[Item, Result]):
    """`submit(item)` returns `commit(batch)`'s answer for `item`.

    `commit` gets the waiting items in the order they arrived (at most
    `most`) and returns one answer per item; if it raises, every item of
    that batch raises the same error, so nothing is reported written that
    was not."""

    def __init__(self, commit: Callable[[list[Item]], list[Result]], *, most: int = 200):
        self._commit = commit
        self._most = most
        self._cond = threading.Condition()
        self._waiting: list[_Waiter[Item, Result]] = []
        self._busy = False

    def submit(self, item: Item) -> Result:
        mine: _Waiter[Item, Result] = _Waiter(item)
        with self._cond:
            self._waiting.append(mine)
        while True:
            with self._cond:
                while self._busy and not mine.done:
                    self._cond.wait()
                if mine.done:
                    break
                self._busy = True
                batch, self._waiting = self._waiting[: self._most], self._waiting[self._most :]
            self._write(batch)
        if mine.error is not None:
            raise mine.error
        return mine.result  # type: ignore[return-value]

    def _write(self, batch: list[_Waiter[Item, Result]]) -> None:
        try:
            results = self._commit([w.item for w in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"group commit answered {len(results)} of {len(batch)} items")
            error = None
        except BaseException as exc:  # noqa: BLE001 - handed to every waiter of the batch
            results, error = [None] * len(batch), exc
        with self._cond:
            for waiter, result in zip(batch, results):
                waiter.result, waiter.error, waiter.done = result, error, True
            self._busy = False
            self._cond.notify_all()
