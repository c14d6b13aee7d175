"""Every measuring script answers `--help` with its usage: argparse formats
help strings with `%`, so a bare percent sign in one (say "2 %)") breaks the
help of the whole script, and nothing else would notice."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p for p in (ROOT / "bench").rglob("*.py") if "argparse" in p.read_text(encoding="utf-8"))


def test_the_scripts_are_found():
    assert ROOT / "bench" / "load" / "run.py" in SCRIPTS and len(SCRIPTS) > 10


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_help_prints_the_usage(script):
    done = subprocess.run([sys.executable, str(script), "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage:")


def test_a_bare_percent_sign_would_fail():
    # What the test above guards against, shown on argparse itself.
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", help="the target + 2 %)")
    with pytest.raises(ValueError):
        parser.format_help()
