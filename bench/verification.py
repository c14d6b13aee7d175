"""Verification throughput: Patients verified per second by `vaxhub worker`
processes against the SOAP population-registry simulator at 50 ms latency.

The simulator runs in its own process (a registry is another machine), the
queue on a fresh PostgreSQL database. The figure is the time from starting
the workers until every queued Patient has a recorded result. Measured in the
same run, for comparison:

- peer: the registry client alone, the same number of concurrent calls straight
  at the simulator, no queue and no database (the simulator-and-client ceiling);
- floor of the queue: one in-process worker with the in-memory fake registry
  (claims, leases and result writes only, no network).

    .venv/bin/python bench/verification.py --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.databases import fresh_postgres_database  # noqa: E402
from vaxhub.adapters.fakes import InMemoryPopulationRegistry  # noqa: E402
from vaxhub.adapters.ports import PersonClaim  # noqa: E402
from vaxhub.adapters.registry_data import SyntheticRegistry, generate_citizens  # noqa: E402
from vaxhub.fhir.normalise import CCCD_SYSTEM  # noqa: E402
from vaxhub.hub.storage.engine import make_engine, upgrade  # noqa: E402
from vaxhub.hub.storage.store import FhirStore  # noqa: E402
from vaxhub.hub.verification.enqueue import VerificationEnqueuer  # noqa: E402
from vaxhub.hub.verification.operator_view import status_counts  # noqa: E402
from vaxhub.hub.verification.queue import queued_count  # noqa: E402
from vaxhub.hub.verification.worker import VerificationWorker, WorkerOptions, build_population_registry  # noqa: E402
from vaxhub.settings import load_settings  # noqa: E402

console = Console(width=120)
SEED = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_simulator(people: int, latency: float, port: int) -> None:
    """Child process: the SOAP simulator until terminated."""
    from vaxhub.adapters.simulators.conditions import SimulatedConditions
    from vaxhub.adapters.simulators.launch import start_registry_simulators

    registry = SyntheticRegistry(generate_citizens(people, seed=SEED))
    sims = start_registry_simulators(registry, population_conditions=SimulatedConditions(latency=latency),
                                     population_port=port)
    print(sims.population_wsdl_url, flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    sims.stop()


@contextmanager
def simulator(people: int, latency: float) -> Iterator[str]:
    """The SOAP simulator in a process of its own (a registry is another machine) while the block runs; its WSDL URL."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve-simulator", "--patients", str(people), "--latency", str(latency), "--port", str(free_port())],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        yield process.stdout.readline().strip()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(10)


def patient(citizen) -> dict:
    family, *given = citizen.full_name.split(" ")
    return {"resourceType": "Patient", "identifier": [{"system": CCCD_SYSTEM, "value": citizen.cccd}],
            "name": [{"family": family, "given": given}], "gender": citizen.sex, "birthDate": citizen.birth_date}


def fresh_database(admin_url: str):
    return fresh_postgres_database(admin_url, "vaxhub_bench_verify")


def load(url: str, citizens) -> None:
    engine = make_engine(url)
    upgrade(engine)
    store = FhirStore(engine, listeners=[VerificationEnqueuer()])
    for start in range(0, len(citizens), 1000):
        with store.writer() as w:
            for citizen in citizens[start: start + 1000]:
                w.create(patient(citizen))
    engine.dispose()


def wait_until_done(engine, deadline: float) -> float:
    started = time.perf_counter()
    while True:
        if queued_count(engine) == 0:  # one index count: the bench should not steal the workers' CPU
            return time.perf_counter() - started
        if time.perf_counter() - started > deadline:
            raise SystemExit(f"not done after {deadline} s: {status_counts(engine)['counts']}")
        time.sleep(0.1)


def measure_workers(url: str, wsdl: str, citizens, *, processes: int, concurrency: int, batch: int) -> float:
    load(url, citizens)
    engine = make_engine(url)
    env = {**os.environ, "VAXHUB_DATABASE_URL": url, "VAXHUB_AUTO_MIGRATE": "false",
           "VAXHUB_POPULATION_REGISTRY_WSDL": wsdl, "VAXHUB_VERIFICATION_CONCURRENCY": str(concurrency),
           "VAXHUB_VERIFICATION_BATCH_SIZE": str(batch)}
    # Workers start (imports, WSDL) before the clock does: they are long-running services.
    workers = [subprocess.Popen([sys.executable, "-m", "vaxhub.hub.cli", "worker", "--name", f"bench-{i}"],
                                env={**env, "VAXHUB_VERIFICATION_LEASE_SECONDS": "60"},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(processes)]
    try:
        elapsed = wait_until_done(engine, 900)
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(30)
    counts = status_counts(engine)["counts"]
    assert counts["verified"] == len(citizens), counts
    engine.dispose()
    return elapsed


def measure_client_alone(wsdl: str, citizens, concurrency: int, batch: int) -> float:
    registry = build_population_registry(load_settings(population_registry_wsdl=wsdl), concurrency=concurrency)
    claims = [PersonClaim(c.full_name, c.birth_date, c.sex, cccd=c.cccd) for c in citizens]
    calls = [claims[start:start + batch] for start in range(0, len(claims), batch)]
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(registry.verify_many if batch > 1 else lambda call: [registry.verify(c) for c in call], calls))
    return time.perf_counter() - started


def measure_fake(url: str, citizens) -> float:
    load(url, citizens)
    engine = make_engine(url)
    fake = InMemoryPopulationRegistry(SyntheticRegistry(citizens))
    worker = VerificationWorker(engine, fake, options=WorkerOptions(concurrency=64, poll_seconds=0.01), name="bench-fake")
    started = time.perf_counter()
    worker.run(until_idle=True)
    elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--processes", type=int, default=2, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=64, help="calls in flight per worker process")
    parser.add_argument("--batch", type=int, default=20, help="Patients per VerifyCitizens call (1: one VerifyCitizen each)")
    parser.add_argument("--serve-simulator", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_simulator:
        serve_simulator(args.patients, args.latency, args.port)
        return

    citizens = generate_citizens(args.patients, seed=SEED)
    rows = []
    with simulator(args.patients, args.latency) as wsdl:
        total = args.processes * args.concurrency
        url, drop = fresh_database(args.postgres_url)
        try:
            elapsed = measure_workers(url, wsdl, citizens, processes=args.processes, concurrency=args.concurrency, batch=args.batch)
        finally:
            drop()
        per_call = f", {args.batch} Patients per call" if args.batch > 1 else ""
        rows.append((f"vaxhub worker × {args.processes} ({args.concurrency} calls in flight each{per_call}), PostgreSQL queue",
                     len(citizens) / elapsed))
        peer = measure_client_alone(wsdl, citizens, total, args.batch)
        rows.append((f"peer: SOAP client alone, {total} calls in flight{per_call}, no queue", len(citizens) / peer))
        url, drop = fresh_database(args.postgres_url)
        try:
            fake = measure_fake(url, citizens)
        finally:
            drop()
        rows.append(("floor of the queue: 1 worker, in-memory fake registry", len(citizens) / fake))

    load_average = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    table = Table(title=f"{len(citizens)} Patients, simulator latency {args.latency * 1000:.0f} ms, "
                        f"{os.cpu_count()} cores, load average {load_average}")
    table.add_column("what")
    table.add_column("verifications/s", justify="right")
    for what, rate in rows:
        table.add_row(what, f"{rate:,.0f}")
    console.print(table)


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
