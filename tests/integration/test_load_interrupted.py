"""An interrupted load test leaves nothing behind: SIGTERM (or a SIGINT that a
background shell would otherwise have the run ignore) stops the hub's
processes, drops the run's database and removes its folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

psutil = pytest.importorskip("psutil", reason="the load test's harness needs psutil (the dev and load extras)")

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_URL = os.environ.get("VAXHUB_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="the load test runs on PostgreSQL: VAXHUB_TEST_POSTGRES_URL is not set")


def _load_databases() -> set[str]:
    engine = create_engine(POSTGRES_URL)
    try:
        with engine.connect() as conn:
            return set(conn.execute(text("SELECT datname FROM pg_database WHERE datname LIKE 'vaxhub_load_%'")).scalars())
    finally:
        engine.dispose()


def _alive(process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize(("signum", "pools"), [(signal.SIGTERM, []), (signal.SIGINT, ["--site-processes", "2"])])
def test_a_run_stopped_while_seeding_stops_the_hub_and_drops_its_database(signum, pools, tmp_path):
    # As from a non-interactive shell's `&`: SIGINT ignored, which the child inherits.
    run = subprocess.Popen(
        [sys.executable, "bench/load/run.py", "--smoke", "--postgres-url", POSTGRES_URL, *pools], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "200", "TMPDIR": str(tmp_path)},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        seen = []
        for line in run.stdout:
            seen.append(line)
            if line.startswith("seeded "):
                break
        else:
            pytest.fail("the run ended before seeding:\n" + "".join(seen)[-3000:])
        hub = psutil.Process(run.pid).children(recursive=True)
        (folder,) = tmp_path.glob("vaxhub-load-*")  # the run's folder
        serving = [p for p in hub if "serve" in p.cmdline()]
        if pools:  # the sites' pool at the run's niceness, the app's and verifiers' below it
            assert sorted(p.nice() for p in serving) == [0, 10]
            assert len({p.environ()["PROMETHEUS_MULTIPROC_DIR"] for p in serving}) == 1  # one metrics folder for both
        else:
            assert len(serving) == 1
        database = serving[0].environ()["VAXHUB_DATABASE_URL"].rsplit("/", 1)[1]
        assert database in _load_databases()
        run.send_signal(signum)
        run.stdout.read()
        assert run.wait(timeout=120) != 0
    finally:
        if run.poll() is None:
            run.kill()
    deadline = time.monotonic() + 15
    while any(map(_alive, hub)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [p.pid for p in hub if _alive(p)] == []
    assert database not in _load_databases()
    assert not folder.exists()
