"""What a serving process does at start-up (vaxhub.hub.asgi): its garbage
collector's settings (vaxhub.hub.gc_tuning) and the certificate PDF process
or, without one, the certificate fonts.

Each check runs in a child interpreter: freezing the heap is process-wide, and
pytest's own process must keep collecting its tests' garbage.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vaxhub.certificates.pdf_fonts import STYLES
from vaxhub.hub.gc_tuning import parse_thresholds

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str, env: dict[str, str] | None = None) -> dict:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env={**os.environ, **(env or {})},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_thresholds_are_three_counts():
    assert parse_thresholds("50000,20,100") == (50000, 20, 100)
    for bad in ("1,2", "0,10,10", "a,b,c", "10,-1,10"):
        with pytest.raises(ValueError):
            parse_thresholds(bad)


def test_settling_freezes_the_start_up_heap_and_still_collects_cycles():
    seen = _run("""
        import gc, json, weakref
        import vaxhub.hub.app  # noqa: F401  (a serving process's start-up heap)
        from vaxhub.hub.gc_tuning import settle_heap
        before = gc.get_freeze_count()
        chosen = settle_heap("40000,15,90")

        class Node: pass
        a, b = Node(), Node()
        a.other, b.other = b, a           # a cycle: reference counting alone never frees it
        gone = weakref.ref(a)
        del a, b
        gc.collect()
        print(json.dumps({"before": before, "frozen": gc.get_freeze_count(), "threshold": gc.get_threshold(),
                          "chosen": chosen, "cycle_freed": gone() is None}))
    """)
    assert seen["before"] == 0
    assert seen["frozen"] > 10_000  # the imports' objects, out of the collector's sight
    assert seen["threshold"] == seen["chosen"] == [40000, 15, 90]
    assert seen["cycle_freed"]


def _served_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Settings for `create_app` on a migrated SQLite database of its own."""
    env = {"VAXHUB_DATABASE_URL": f"sqlite:///{tmp_path / 'hub.db'}", "VAXHUB_DATA_DIR": str(tmp_path / "data"), **extra}
    assert subprocess.run([sys.executable, "-m", "vaxhub.hub.cli", "db", "upgrade"], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, timeout=120).returncode == 0
    return env


def test_the_served_app_settles_its_heap_at_start_up(tmp_path):
    env = _served_env(tmp_path, VAXHUB_GC_THRESHOLDS="30000,12,80")
    seen = _run("""
        import gc, json
        from fastapi.testclient import TestClient
        from vaxhub.hub.asgi import create_app
        app = create_app()
        built = {"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}
        with TestClient(app) as client:   # runs the start-up hooks, as uvicorn does
            assert client.get("/healthz").status_code == 200
            started = {"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}
        print(json.dumps({"built": built, "started": started}))
    """, env)
    assert seen["built"]["frozen"] == 0, "building the app alone must not freeze (tests build many)"
    assert seen["started"]["threshold"] == [30000, 12, 80]
    assert seen["started"]["frozen"] > 10_000


def test_the_served_app_draws_pdfs_in_a_niced_child_that_ends_with_it(tmp_path):
    seen = _run("""
        import json, os
        from pathlib import Path
        from fastapi.testclient import TestClient
        from vaxhub.certificates import pdf_fonts
        from vaxhub.hub.asgi import create_app
        app = create_app()
        pdfs = app.state.certificates.pdfs
        built = pdfs.pid
        with TestClient(app):   # start-up only: no request is made
            child = pdfs.pid
            nice = os.getpriority(os.PRIO_PROCESS, child)
            cut_here = len(pdf_fonts._cut)
        status = Path(f"/proc/{child}/status")
        print(json.dumps({"built": built, "child": child, "nice": nice, "own_nice": os.getpriority(os.PRIO_PROCESS, 0),
                          "cut_here": cut_here, "after": status.exists() and "State:\tZ" not in status.read_text()}))
    """, _served_env(tmp_path, VAXHUB_PDF_NICE="7"))
    assert seen["built"] is None, "building the app alone must not start it (tests build many)"
    assert seen["child"] and seen["nice"] == min(19, seen["own_nice"] + 7)
    assert seen["cut_here"] == 0, "the child cuts the fonts; the API process need not"
    assert not seen["after"], "shutting down ends the PDF process"


def test_without_a_pdf_process_the_served_app_cuts_the_fonts_before_its_first_request(tmp_path):
    seen = _run("""
        import json
        from pathlib import Path
        from fastapi.testclient import TestClient
        from vaxhub.certificates import pdf_fonts
        from vaxhub.hub.asgi import create_app
        app = create_app()
        built = dict(pdf_fonts._cut)
        with TestClient(app):   # start-up only: no request is made
            started = {style: str(path) for style, path in pdf_fonts._cut.items()}
            exist = all(Path(path).stat().st_size > 0 for path in started.values())
            child = app.state.certificates.pdfs.pid
        print(json.dumps({"built": len(built), "started": started, "exist": exist, "child": child}))
    """, _served_env(tmp_path, VAXHUB_PDF_PROCESS="false"))
    assert seen["built"] == 0, "building the app alone must not cut them (tests build many)"
    assert sorted(seen["started"]) == sorted(STYLES) and seen["exist"]
    assert seen["child"] is None
