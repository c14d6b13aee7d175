"""GroupCommit: what threads submit together is committed together, each
thread returns after its own item is written, and a failure reaches exactly
the items of its batch."""

from __future__ import annotations

import threading
import time

import pytest

from vaxhub.hub.audit.group_commit import GroupCommit


class Recorder:
    """A commit that records its batches; the first one can be held open."""

    def __init__(self, *, hold_first: bool = False, fail_batch: int | None = None):
        self.batches: list[list[str]] = []
        self.release = threading.Event()
        self.entered = threading.Event()
        self.hold_first = hold_first
        self.fail_batch = fail_batch

    def __call__(self, items: list[str]) -> list[str]:
        self.batches.append(list(items))
        if self.hold_first and len(self.batches) == 1:
            self.entered.set()
            assert self.release.wait(10)
        if self.fail_batch == len(self.batches):
            raise OSError("database went away")
        return [f"written:{item}" for item in items]


def _submit_all(group: GroupCommit, items: list[str]) -> tuple[list[threading.Thread], dict[str, object]]:
    answers: dict[str, object] = {}

    def run(item: str) -> None:
        try:
            answers[item] = group.submit(item)
        except OSError as exc:
            answers[item] = exc

    threads = [threading.Thread(target=run, args=(item,)) for item in items]
    for t in threads:
        t.start()
    return threads, answers


def _wait_queued(group: GroupCommit, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(group._waiting) < count:
        assert time.monotonic() < deadline, "the submitters never queued"
        time.sleep(0.005)


def test_a_lone_item_is_committed_at_once_on_its_own():
    commit = Recorder()
    assert GroupCommit(commit).submit("a") == "written:a"
    assert commit.batches == [["a"]]


def test_items_arriving_during_a_commit_are_committed_together_and_each_gets_its_answer():
    commit = Recorder(hold_first=True)
    group = GroupCommit(commit)
    first, answers = _submit_all(group, ["first"])
    assert commit.entered.wait(10)
    others, more = _submit_all(group, [f"r{i}" for i in range(6)])
    _wait_queued(group, 6)
    assert all(t.is_alive() for t in others), "a submitter returned before its item was written"
    commit.release.set()
    for t in first + others:
        t.join(10)
    assert commit.batches[0] == ["first"]
    assert len(commit.batches) == 2 and sorted(commit.batches[1]) == [f"r{i}" for i in range(6)]
    assert answers == {"first": "written:first"}
    assert more == {f"r{i}": f"written:r{i}" for i in range(6)}


def test_a_failed_commit_fails_its_own_batch_only():
    commit = Recorder(hold_first=True, fail_batch=2)
    group = GroupCommit(commit)
    first, answers = _submit_all(group, ["first"])
    assert commit.entered.wait(10)
    failing, failed = _submit_all(group, ["x", "y"])
    _wait_queued(group, 2)
    commit.release.set()
    for t in first + failing:
        t.join(10)
    assert answers == {"first": "written:first"}
    assert set(failed) == {"x", "y"} and all(isinstance(e, OSError) for e in failed.values())
    assert group.submit("after") == "written:after"


def test_batches_are_capped_and_nothing_waiting_is_left_behind():
    commit = Recorder(hold_first=True)
    group = GroupCommit(commit, most=3)
    first, _ = _submit_all(group, ["first"])
    assert commit.entered.wait(10)
    others, answers = _submit_all(group, [f"r{i}" for i in range(7)])
    _wait_queued(group, 7)
    commit.release.set()
    for t in first + others:
        t.join(10)
    assert all(len(b) <= 3 for b in commit.batches)
    assert sorted(i for b in commit.batches[1:] for i in b) == sorted(f"r{i}" for i in range(7))
    assert len(answers) == 7


def test_a_commit_that_answers_too_few_items_is_an_error_for_all_of_them():
    group = GroupCommit(lambda items: [])
    with pytest.raises(RuntimeError, match="answered 0 of 1"):
        group.submit("a")
