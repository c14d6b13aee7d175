"""What one read costs: CPU of the API and of PostgreSQL per request, for the
reads the health-book app and operators make most.

One `vaxhub serve` process on a fresh PostgreSQL database; `--people` people
are stored with two doses each (Bundles shaped as in the national load
test), then each kind of read is sent `--requests` times by 4 client threads,
round robin over the people: `Patient/{id}/$everything`, a `Patient` read and
an `Immunization?patient=` search. Every one of them is authorised and leaves
an AuditEvent, as in production. Rate limits are counted in the local
Redis, as in the load test (`--rate-limits database`: in PostgreSQL, one
upsert per request). CPU is read from the processes' own counters (`/proc`),
so the figures move less with how busy the machine is than a rate would.

The floor, measured in the same run: the same number of plain HTTP GETs of
`/healthz` (no database, no audit) through the same server and clients: what
uvicorn, FastAPI and the client cost before the hub does anything. hub/floor
is the API's CPU per read over it.

    .venv/bin/pip install -e '.[load]'   # psutil, as for the load test
    .venv/bin/python bench/read_cost.py --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from bench.databases import fresh_postgres_database  # noqa: E402
from bench.dose_cost import api_pids_of, cpu_seconds, postgres_pids, dose_bundles  # noqa: E402
from bench.ingest import Hub, post_all, register_sites  # noqa: E402
from bench.load import workload  # noqa: E402
from vaxhub.hub.storage.store import RESOURCE  # noqa: E402

console = Console(width=150)


def _patient_ids(url: str, limit: int) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(RESOURCE.c.res_id).where(RESOURCE.c.res_type == "Patient").order_by(RESOURCE.c.res_id).limit(limit)).scalars())
    finally:
        engine.dispose()


def _send(root: str, headers: dict[str, str], paths: list[str]) -> list[str]:
    """GET every path with 4 threads, one keep-alive client each; returns the failures."""
    local = threading.local()
    failures: list[str] = []

    def get(path: str) -> None:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=root, headers=headers, timeout=60)
        r = local.client.get(path)
        if r.status_code != 200:
            failures.append(f"{path}: {r.status_code} {r.text[:200]}")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(get, paths))
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres-url", default=os.environ.get("VAXHUB_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
                        help="admin URL; a fresh database is created and dropped")
    parser.add_argument("--people", type=int, default=2000, help="people stored with two doses before the reads")
    parser.add_argument("--requests", type=int, default=3000, help="requests of each kind")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rate-limits", choices=("redis", "database"), default="redis",
                        help="where the limiter counts requests (the load test's default: Redis)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    os.environ["VAXHUB_RATE_LIMIT_BACKEND"] = args.rate_limits  # the hub's process inherits these
    if args.rate_limits == "redis":
        os.environ["VAXHUB_REDIS_URL"] = args.redis_url

    people = workload.split_people(args.people * 2, args.seed, args.people)
    sites = [r for s in people.sites for r in workload.site_resources(s)]
    url, drop = fresh_postgres_database(args.postgres_url, "vaxhub_read_cost")
    hub = Hub(url, 1)
    table = Table(title=f"per request: {args.requests} of each kind over {args.people} people, one API process, 4 client threads")
    for column in ("read", "requests/s", "API CPU ms", "PostgreSQL CPU ms", "API / floor", "failures"):
        table.add_column(column, justify="right")
    ok = True
    try:
        register_sites(hub.base, hub.headers, sites)
        for dose in (1, 2):
            _elapsed, failures = post_all(hub.base, hub.headers, dose_bundles(people, dose), 4, f"dose {dose} of {args.people} people")
            ok &= not failures
        ids = _patient_ids(url, args.people)
        root = hub.base.removesuffix("/fhir")
        kinds = {
            "floor: GET /healthz": ["/healthz"] * args.requests,
            "Patient/{id}/$everything": [f"/fhir/Patient/{ids[i % len(ids)]}/$everything" for i in range(args.requests)],
            "Patient/{id}": [f"/fhir/Patient/{ids[i % len(ids)]}" for i in range(args.requests)],
            "Immunization?patient={id}": [f"/fhir/Immunization?patient={ids[i % len(ids)]}" for i in range(args.requests)],
        }
        floor = None
        headers = {"authorization": hub.headers["authorization"]}
        for name, paths in kinds.items():
            _send(root, headers, paths[:50])  # warm the connections and caches
            api_pids, pg_pids = api_pids_of(hub), postgres_pids()
            api_before, pg_before = cpu_seconds(api_pids), cpu_seconds(pg_pids)
            started = time.perf_counter()
            failures = _send(root, headers, paths)
            elapsed = time.perf_counter() - started
            api_ms = (cpu_seconds(api_pids) - api_before) * 1000 / len(paths)
            pg_ms = (cpu_seconds(postgres_pids()) - pg_before) * 1000 / len(paths)
            floor = floor or api_ms
            ok &= not failures
            table.add_row(name, f"{len(paths) / elapsed:,.0f}", f"{api_ms:.2f}", f"{pg_ms:.2f}", f"{api_ms / floor:.1f}", str(len(failures)))
            for failure in failures[:3]:
                console.print(f"[red]{failure}")
    finally:
        hub.stop()
        drop()
    console.print(table)
    console.print(f"machine: {os.cpu_count()} cores, load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
