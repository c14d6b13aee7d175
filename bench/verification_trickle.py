"""What a verification worker spends per Patient when new Patients arrive a
few at a time, as under the national load test (each site Bundle brings
about eight), rather than all queued at once as in `bench/verification.py`.

One `vaxhub worker` process against the SOAP simulator (200 ms latency, as
in the load test) on a fresh PostgreSQL database; a feeder stores
`--per-write` new Patients every `--per-write / --rate` seconds for
`--seconds`. Measured for each `--claim-every` value (the worker's
`VAXHUB_VERIFICATION_CLAIM_EVERY`), on fresh Patients and a fresh database
each time: the worker's CPU from the first Patient stored to the last
verified (its own `/proc` counters), per Patient; the results it recorded;
and how long a Patient waited from being stored to being verified.

    .venv/bin/python bench/verification_trickle.py --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.databases import fresh_postgres_database  # noqa: E402
from bench.verification import SEED, patient, simulator  # noqa: E402
from vaxhub.adapters.registry_data import generate_citizens  # noqa: E402
from vaxhub.hub.storage.engine import make_engine, upgrade  # noqa: E402
from vaxhub.hub.storage.outbox_tables import VerificationJobRow, VerificationResultRow  # noqa: E402
from vaxhub.hub.storage.store import FhirStore  # noqa: E402
from vaxhub.hub.verification.enqueue import VerificationEnqueuer  # noqa: E402
from vaxhub.hub.verification.queue import queued_count  # noqa: E402

console = Console(width=130)
JOB = VerificationJobRow.__table__
RESULT = VerificationResultRow.__table__


def feed(store: FhirStore, citizens, per_write: int, rate: float, done: threading.Event) -> None:
    """Store the citizens' Patients `per_write` at a time, paced to `rate` per second."""
    started = time.monotonic()
    for index, start in enumerate(range(0, len(citizens), per_write)):
        time.sleep(max(0.0, started + index * per_write / rate - time.monotonic()))
        with store.writer() as w:
            for citizen in citizens[start:start + per_write]:
                w.create(patient(citizen))
    done.set()


def measure(url: str, wsdl: str, citizens, *, claim_every: float, concurrency: int, batch: int, per_write: int, rate: float) -> dict:
    engine = make_engine(url)
    env = {**os.environ, "VAXHUB_DATABASE_URL": url, "VAXHUB_AUTO_MIGRATE": "false", "VAXHUB_POPULATION_REGISTRY_WSDL": wsdl,
           "VAXHUB_VERIFICATION_CONCURRENCY": str(concurrency), "VAXHUB_VERIFICATION_BATCH_SIZE": str(batch),
           "VAXHUB_VERIFICATION_CLAIM_EVERY": str(claim_every)}
    worker = subprocess.Popen([sys.executable, "-m", "vaxhub.hub.cli", "worker", "--name", "trickle"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(4)  # start-up (imports, the WSDL) is not the per-Patient cost
        cpu = psutil.Process(worker.pid)
        before = sum(cpu.cpu_times()[:2])
        with engine.connect() as conn:
            results_before = conn.execute(select(func.count()).select_from(RESULT)).scalar_one()
        fed = threading.Event()
        threading.Thread(target=feed, args=(FhirStore(engine, listeners=[VerificationEnqueuer()]), citizens, per_write, rate, fed),
                         daemon=True).start()
        deadline = time.monotonic() + 600
        while not (fed.is_set() and queued_count(engine) == 0):
            if time.monotonic() > deadline:
                raise SystemExit("the worker did not keep up within ten minutes")
            time.sleep(0.2)
        used = sum(cpu.cpu_times()[:2]) - before
        with engine.connect() as conn:
            results = conn.execute(select(func.count()).select_from(RESULT)).scalar_one() - results_before
            waits = sorted(
                (row.checked_at - row.enqueued_at).total_seconds()
                for row in conn.execute(select(JOB.c.enqueued_at, JOB.c.checked_at).where(JOB.c.checked_at.is_not(None)))
            )
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        engine.dispose()
    return {"cpu_ms": 1000 * used / len(citizens), "results": results,
            "wait_p50": waits[len(waits) // 2], "wait_p95": waits[int(len(waits) * 0.95)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres-url", default=os.environ.get("VAXHUB_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--rate", type=float, default=180.0, help="new Patients per second (the load test's: about 180)")
    parser.add_argument("--per-write", type=int, default=8, help="new Patients per transaction (a site Bundle's: about 8)")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long Patients arrive, for each setting")
    parser.add_argument("--latency", type=float, default=0.2, help="the simulator's latency per call, in seconds")
    parser.add_argument("--concurrency", type=int, default=16, help="calls in flight (the load test's)")
    parser.add_argument("--batch", type=int, default=20, help="Patients per call at most (the load test's)")
    parser.add_argument("--claim-every", type=float, nargs="+", default=[0.0, 0.25], help="settings compared")
    args = parser.parse_args()

    per_setting = int(args.rate * args.seconds)
    citizens = generate_citizens(per_setting * len(args.claim_every), seed=SEED)
    rows = []
    with simulator(len(citizens), args.latency) as wsdl:
        for index, claim_every in enumerate(args.claim_every):
            share = citizens[index * per_setting:(index + 1) * per_setting]
            console.print(f"claim every {claim_every} s: {len(share):,} Patients over {args.seconds:.0f} s …")
            url, drop = fresh_postgres_database(args.postgres_url, "vaxhub_bench_trickle")  # a queue of its own
            try:
                upgrade(make_engine(url))
                rows.append((claim_every, measure(url, wsdl, share, claim_every=claim_every, concurrency=args.concurrency,
                                                  batch=args.batch, per_write=args.per_write, rate=args.rate)))
            finally:
                drop()

    load_average = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    table = Table(title=f"{args.rate:.0f} new Patients/s, {args.per_write} per transaction, registry latency {args.latency * 1000:.0f} ms, "
                        f"{args.concurrency} calls in flight of up to {args.batch}; load average {load_average}")
    for column in ("claim every (s)", "worker CPU ms per Patient", "results recorded", "stored → verified p50 / p95 (s)", "CPU / first row's"):
        table.add_column(column, justify="right")
    first = rows[0][1]["cpu_ms"]
    for claim_every, figures in rows:
        table.add_row(f"{claim_every:g}", f"{figures['cpu_ms']:.2f}", f"{figures['results']:,}",
                      f"{figures['wait_p50']:.2f} / {figures['wait_p95']:.2f}", f"{figures['cpu_ms'] / first:.2f}")
    console.print(table)


if __name__ == "__main__":
    main()
