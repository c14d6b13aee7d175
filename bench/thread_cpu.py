"""`vaxhub serve` with the CPU of chosen functions counted per call, exactly.

Sampling profilers misled on a busy two-core machine: py-spy's `--gil`
mode put a large share of samples in blocking calls (a socket read, psycopg
waiting for PostgreSQL), apparently charging them to the thread that last
held the interpreter lock while no other thread wanted it, and deterministic
profilers inflate small, frequent calls. This wraps each named function so that every call adds
its own thread's CPU time (`time.thread_time`, the kernel's count for that
thread) to a total; a function that calls another counted one is counted
once, outermost. Everything a synchronous endpoint or dependency does on a
request thread is counted as `request threads`. The totals are written to
`VAXHUB_BENCH_THREAD_CPU` every two seconds and at exit.

The benches that start a hub (`bench/dose_cost.py`, `bench/read_cost.py`,
`bench/ingest.py`) start it through this file when that variable is set:

    VAXHUB_BENCH_THREAD_CPU=/tmp/cpu.txt .venv/bin/python bench/dose_cost.py --rounds 1 --bundles 100 --vxu 2000
    cat /tmp/cpu.txt

`VAXHUB_BENCH_THREAD_CPU_PROBES` replaces the default list: comma-separated
`module:attribute.path` names.
"""

from __future__ import annotations

import atexit
import functools
import importlib
import os
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

OUT_ENV = "VAXHUB_BENCH_THREAD_CPU"
PROBES_ENV = "VAXHUB_BENCH_THREAD_CPU_PROBES"
DEFAULT_PROBES = (
    "vaxhub.hub.audit.trail:AuditTrail.record",
    "vaxhub.hub.storage.store:FhirStore.read",
    "vaxhub.hub.storage.store:FhirStore.search",
    "vaxhub.hub.storage.store:FhirStore.run_unit",
    "vaxhub.hub.security.tokens:TokenService.verify",
    "vaxhub.hub.security.rate_limits:RateLimiter.ask",
    "vaxhub.hub.security.rate_limits:RateLimiter.spend_locally",
    "vaxhub.hub.ingest.vxu:VxuReceiver.prepare",
    "vaxhub.hub.ingest.vxu_groups:VxuGroups.store_message",
    "vaxhub.hub.ingest.vxu:translate_vxu",
    "vaxhub.hub.certificates.service:CertificateService.verify",
)

_totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
_lock = threading.Lock()
_inside = threading.local()


def _add(label: str, seconds: float) -> None:
    with _lock:
        total = _totals[label]
        total[0] += 1
        total[1] += seconds


def _counted(label: str, function):  # noqa: ANN001, ANN202 - any callable
    @functools.wraps(function)
    def counted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        open_labels = _inside.__dict__.setdefault("labels", set())
        if label in open_labels:
            return function(*args, **kwargs)
        open_labels.add(label)
        started = time.thread_time()
        try:
            return function(*args, **kwargs)
        finally:
            open_labels.discard(label)
            _add(label, time.thread_time() - started)

    return counted


def install(name: str) -> None:
    """Count `module:attribute.path` (a function, or a method of a class)."""
    module_name, _, path = name.partition(":")
    owner = importlib.import_module(module_name)
    *parents, attribute = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    setattr(owner, attribute, _counted(path, getattr(owner, attribute)))


def _count_request_threads() -> None:
    """Everything run on a request thread (starlette's run_in_threadpool, used by FastAPI and the hub)."""
    import fastapi.concurrency
    import fastapi.dependencies.utils
    import fastapi.routing
    import starlette.concurrency

    original = starlette.concurrency.run_in_threadpool

    async def run_in_threadpool(func, /, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        def call():  # noqa: ANN202
            started = time.thread_time()
            try:
                return func(*args, **kwargs)
            finally:
                _add("request threads", time.thread_time() - started)

        return await original(call)

    for module in (starlette.concurrency, fastapi.concurrency, fastapi.routing, fastapi.dependencies.utils):
        if getattr(module, "run_in_threadpool", None) is original:
            module.run_in_threadpool = run_in_threadpool


def write(path: Path, started: float, owner: int) -> None:
    if os.getpid() != owner:
        return  # a forked child inherits the exit hook, not the counts
    with _lock:
        rows = sorted(_totals.items(), key=lambda item: -item[1][1])
    lines = [f"process {os.getpid()} CPU since start-up: {time.process_time() - started:.3f} s",
             f"{'function':48} {'calls':>8} {'CPU s':>9} {'ms/call':>9}"]
    lines += [f"{label:48} {calls:8d} {seconds:9.3f} {1000 * seconds / max(calls, 1):9.3f}" for label, (calls, seconds) in rows]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    out = Path(os.environ.get(OUT_ENV) or "thread_cpu.txt")
    started = time.process_time()
    _count_request_threads()
    probes = os.environ.get(PROBES_ENV)
    for name in (probes.split(",") if probes else DEFAULT_PROBES):
        install(name.strip())
    owner = os.getpid()
    atexit.register(write, out, started, owner)

    def every_two_seconds() -> None:
        while True:
            time.sleep(2)
            write(out, started, owner)

    threading.Thread(target=every_two_seconds, name="thread-cpu", daemon=True).start()
    from vaxhub.hub.cli import app

    sys.argv = ["vaxhub", *sys.argv[1:]]
    app()


if __name__ == "__main__":
    main()
