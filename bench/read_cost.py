"""What one read costs: CPU of the API and of PostgreSQL per request, for the
reads the health-book app and operators make most.

One `vaxhub serve` process on a fresh PostgreSQL database; `--people` people
are stored with two doses each (Bundles shaped as in the national load
test), their identities are checked against the synthetic population by the
verification worker (in this process, before anything is measured), and
`--certificates` of them get a certificate. Then each kind of read is sent
`--requests` times by 4 client threads, round robin over the people:
`Patient/{id}/$everything`, a `Patient` read, an `Immunization?patient=`
search, the latest certificate's `dcc.txt` (as the app downloads it; drawn
forms are cached, so the text is what every download costs), and
`POST /certificates/verify` of their QR texts with a verifier's token. Every
one of them is authorised and leaves an AuditEvent, as in production. Rate
limits are counted in the local Redis, as in the load test
(`--rate-limits database`: in PostgreSQL, one upsert per request). CPU is read from the processes' own counters (`/proc`),
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
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from bench.databases import fresh_postgres_database  # noqa: E402
from bench.dose_cost import CpuMeter, api_pids_of, postgres_pids, dose_bundles  # noqa: E402
from bench.ingest import Hub, post_all, register_sites  # noqa: E402
from bench.load import workload  # noqa: E402
from vaxhub.adapters.fakes import InMemoryPopulationRegistry  # noqa: E402
from vaxhub.adapters.registry_data import Citizen, SyntheticRegistry  # noqa: E402
from vaxhub.hub.security.client_tools import generate_key, load_key, request_token  # noqa: E402
from vaxhub.hub.security.clients import ClientRegistry  # noqa: E402
from vaxhub.hub.storage.store import RESOURCE  # noqa: E402
from vaxhub.hub.verification.circuit import CircuitBreaker  # noqa: E402
from vaxhub.hub.verification.worker import REGISTRY_NAME, VerificationWorker, WorkerOptions  # noqa: E402

console = Console(width=150)


def _patient_ids(url: str, limit: int) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(RESOURCE.c.res_id).where(RESOURCE.c.res_type == "Patient").order_by(RESOURCE.c.res_id).limit(limit)).scalars())
    finally:
        engine.dispose()


def _send(root: str, headers: dict[str, str], requests: list[str | tuple[str, dict]]) -> list[str]:
    """Send every request with 4 threads, one keep-alive client each: a path
    is a GET, (path, json) a POST. Returns the failures."""
    local = threading.local()
    failures: list[str] = []

    def send(request: str | tuple[str, dict]) -> None:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=root, headers=headers, timeout=60)
        path, body = request if isinstance(request, tuple) else (request, None)
        r = local.client.get(path) if body is None else local.client.post(path, json=body)
        if r.status_code != 200 or (body is not None and not r.json().get("valid")):
            failures.append(f"{path}: {r.status_code} {r.text[:200]}")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(send, requests))
    return failures


def _verify_identities(url: str, people: workload.LoadPeople) -> int:
    """Drain the verification queue against the synthetic population (certificates need verified people)."""
    citizens = [
        Citizen(cccd=p.cccd, full_name=p.full_name, birth_date=p.birth_date_text, sex=p.sex, cmnd=p.cmnd, bhxh=p.bhxh)
        for p in people.population.people if p.cccd
    ]
    engine = create_engine(url)
    try:
        worker = VerificationWorker(
            engine, InMemoryPopulationRegistry(SyntheticRegistry(citizens)), options=WorkerOptions(concurrency=4, poll_seconds=0.01),
            breaker=CircuitBreaker(engine, REGISTRY_NAME, worker="read-cost"), rng=random.Random(1), name="read-cost",
        )
        return worker.run(until_idle=True)
    finally:
        engine.dispose()


def _certificates(root: str, headers: dict[str, str], patient_ids: list[str]) -> tuple[list[str], list[str]]:
    """Issue one certificate each; returns the people who got one and their QR texts (HC1 and SHC)."""
    issued, qr = [], []
    with httpx.Client(base_url=root, headers=headers, timeout=60) as client:
        for patient_id in patient_ids:
            r = client.post(f"/certificates/patients/{patient_id}")
            if r.status_code != 201:
                console.print(f"[yellow]no certificate for Patient/{patient_id}: {r.status_code} {r.text[:200]}")
                continue
            issued.append(patient_id)
            for name in ("dcc.txt", "shc.txt"):
                qr.append(client.get(f"/certificates/{r.json()['uvci']}/{name}").raise_for_status().text.strip())
    return issued, qr


def _verifier_headers(hub: Hub, url: str) -> dict[str, str]:
    """A border post's token: verifiers may check certificates and nothing else."""
    private, public, _kid = generate_key(hub.data_dir, "read-cost-verifier")
    engine = create_engine(url)
    try:
        ClientRegistry(engine).register("read-cost-verifier", name="read-cost verifier", kind="verifier",
                                        jwks=orjson.loads(public.read_bytes()), scopes="system/Patient.rs")
    finally:
        engine.dispose()
    root = hub.base.removesuffix("/fhir")
    return {"authorization": f"Bearer {request_token(f'{root}/auth/token', 'read-cost-verifier', load_key(private))['access_token']}"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres-url", default=os.environ.get("VAXHUB_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
                        help="admin URL; a fresh database is created and dropped")
    parser.add_argument("--people", type=int, default=2000, help="people stored with two doses before the reads")
    parser.add_argument("--requests", type=int, default=3000, help="requests of each kind")
    parser.add_argument("--certificates", type=int, default=200, help="people given a certificate (downloads and verifications go round them)")
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
        analyse = create_engine(url, isolation_level="AUTOCOMMIT")
        with analyse.connect() as conn:
            conn.exec_driver_sql("ANALYZE")  # planner statistics, as autovacuum (off on some test servers) would have them
        analyse.dispose()
        root = hub.base.removesuffix("/fhir")
        headers = {"authorization": hub.headers["authorization"]}
        console.print(f"identities checked: {_verify_identities(url, people)}")
        holders, qr = _certificates(root, headers, ids[: args.certificates])
        if not holders:
            raise RuntimeError("no certificate could be issued: the downloads and verifications have nothing to read")
        verifier = _verifier_headers(hub, url)
        n = args.requests
        kinds = {
            "floor: GET /healthz": (headers, ["/healthz"] * n),
            "Patient/{id}/$everything": (headers, [f"/fhir/Patient/{ids[i % len(ids)]}/$everything" for i in range(n)]),
            "Patient/{id}": (headers, [f"/fhir/Patient/{ids[i % len(ids)]}" for i in range(n)]),
            "Immunization?patient={id}": (headers, [f"/fhir/Immunization?patient={ids[i % len(ids)]}" for i in range(n)]),
            "certificate latest/dcc.txt": (headers, [f"/certificates/patients/{holders[i % len(holders)]}/latest/dcc.txt" for i in range(n)]),
            "POST /certificates/verify": (verifier, [("/certificates/verify", {"qr": qr[i % len(qr)]}) for i in range(n)]),
        }
        floor = None
        for name, (auth, paths) in kinds.items():
            _send(root, auth, paths[:50])  # warm the connections and caches
            api_pids = api_pids_of(hub)
            with CpuMeter(lambda: api_pids) as api, CpuMeter(postgres_pids) as pg:
                started = time.perf_counter()
                failures = _send(root, auth, paths)
                elapsed = time.perf_counter() - started
            api_ms = api.seconds * 1000 / len(paths)
            pg_ms = pg.seconds * 1000 / len(paths)
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
