"""The SQLite copy is one consistent snapshot even while the hub keeps writing."""

from __future__ import annotations

import threading

from sqlalchemy import text

from vaxhub.hub.backup.sqlite_database import check_database, copy_database, row_counts
from vaxhub.hub.storage.engine import make_engine, write_transaction


def test_copy_is_one_snapshot_while_writers_commit_between_its_steps(tmp_path):
    live = tmp_path / "live.db"
    engine = make_engine(f"sqlite:///{live}")
    with write_transaction(engine) as conn:
        conn.execute(text("CREATE TABLE dose_pair (id INTEGER PRIMARY KEY, side TEXT NOT NULL)"))
        conn.execute(text("CREATE TABLE filler (id INTEGER PRIMARY KEY, body TEXT NOT NULL)"))
        conn.execute(text("INSERT INTO filler (body) VALUES (:b)"), [{"b": "x" * 2000} for _ in range(1000)])  # ~500 pages
    stop, written = threading.Event(), []

    def writer() -> None:
        # Each transaction adds a pair: a copy that caught half of one would hold an odd count.
        while not stop.is_set():
            with write_transaction(engine) as conn:
                conn.execute(text("INSERT INTO dose_pair (side) VALUES ('left'), ('right')"))
            written.append(1)

    thread = threading.Thread(target=writer)
    thread.start()
    steps = []
    try:
        while len(written) < 5:
            stop.wait(0.01)
        copy_database(live, tmp_path / "copy.db", lambda _step, done, total: steps.append(done), pages_per_step=4)
        during = len(written)
        while len(written) < during + 5:  # the writer was not blocked by the copy
            stop.wait(0.01)
    finally:
        stop.set()
        thread.join()
    copied = check_database(tmp_path / "copy.db")  # PRAGMA integrity_check passes
    assert len(steps) > 50, "the copy ran in many steps, with commits landing between them"
    assert steps == sorted(steps), "the copy started over: it did not hold one snapshot"
    assert copied["filler"] == 1000
    assert copied["dose_pair"] > 0 and copied["dose_pair"] % 2 == 0
    assert row_counts(live)["dose_pair"] > copied["dose_pair"]
    assert not (tmp_path / "copy.db-wal").exists()
    engine.dispose()
