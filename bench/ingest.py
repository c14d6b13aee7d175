"""Ingestion benchmark: transaction Bundles of 100 entries posted to a running hub.

For each backend (SQLite file, PostgreSQL database) this starts `vaxhub serve`
on a fresh database, posts a synthetic population as transaction Bundles of
Patients and their Immunizations (conditional creates, as sites send them)
from several client threads, and prints resources/s and Immunizations/s.

The floor is measured in the same run: fhir.resources parse + validate of the
same resources in one process, the least work any FHIR server must do per
resource. The ratio hub/floor says how much of a core's validation rate the
whole HTTP + database path keeps.

    .venv/bin/python bench/ingest.py --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from bench.databases import fresh_postgres_database  # noqa: E402
from vaxhub.fhir import synthetic
from vaxhub.fhir.resources import MODELS
from vaxhub.hub.security.client_tools import generate_key, load_key, request_token
from vaxhub.hub.security.clients import ClientRegistry
from vaxhub.hub.storage.engine import make_engine

console = Console(width=150)
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _site_refs(node, mapping: dict[str, str]):
    if isinstance(node, dict):
        return {k: (mapping.get(v, v) if k == "reference" else _site_refs(v, mapping)) for k, v in node.items()}
    if isinstance(node, list):
        return [_site_refs(v, mapping) for v in node]
    return node


def build_workload(people: int, seed: int) -> tuple[list[dict], list[bytes], int, int]:
    """Site resources (registered once, with their own ids) and bundles of
    Patients with their Immunizations, as a site's backlog upload looks."""
    population = synthetic.generate_population(people, seed=seed)
    site_resources, mapping = [], {}
    for site in population.sites:
        for entry in synthetic.site_entries(site):
            res_id = entry.full_url.removeprefix("urn:uuid:")
            site_resources.append({**entry.resource, "id": res_id})
            mapping[entry.full_url] = f"{entry.resource['resourceType']}/{res_id}"
    bundles, current = [], []
    for person in population.people:
        group = synthetic.person_entries(population, person)
        if current and len(current) + len(group) > 100:
            bundles.append(synthetic.transaction_bundle(current))
            current = []
        current += group
    if current:
        bundles.append(synthetic.transaction_bundle(current))
    bundles = [_site_refs(b, mapping) for b in bundles]
    resources = sum(len(b["entry"]) for b in bundles)
    immunizations = sum(1 for b in bundles for e in b["entry"] if e["resource"]["resourceType"] == "Immunization")
    return site_resources, [orjson.dumps(b) for b in bundles], resources, immunizations


def measure_floor(bundles: list[bytes]) -> float:
    """Resources/s for json parse + fhir.resources validation in this one process."""
    started = time.perf_counter()
    count = 0
    for body in bundles:
        for entry in orjson.loads(body)["entry"]:
            resource = entry["resource"]
            MODELS[resource["resourceType"]].model_validate(resource)
            count += 1
    return count / (time.perf_counter() - started)


class Hub:
    """`vaxhub serve` in a child process on a database of its own, and a token to post with."""

    def __init__(self, database_url: str, workers: int):
        self.port = free_port()
        self.data_dir = Path(tempfile.mkdtemp(prefix="vaxhub-bench-data-"))
        env = {**os.environ, "VAXHUB_DATABASE_URL": database_url, "VAXHUB_DATA_DIR": str(self.data_dir),
               "VAXHUB_RATE_LIMIT_PER_SECOND": "100000", "VAXHUB_RATE_LIMIT_BURST": "100000"}
        self.log = tempfile.TemporaryFile()
        # With VAXHUB_BENCH_THREAD_CPU set, the hub counts its functions' CPU (bench/thread_cpu.py).
        command = [str(ROOT / "bench" / "thread_cpu.py")] if os.environ.get("VAXHUB_BENCH_THREAD_CPU") else ["-m", "vaxhub.hub.cli"]
        self.proc = subprocess.Popen(
            [sys.executable, *command, "serve", "--port", str(self.port), "--workers", str(workers), "--log-level", "warning"],
            env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
        )
        self.base = f"http://127.0.0.1:{self.port}/fhir"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"hub exited: {self.log.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{self.base}/metadata", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            self.proc.kill()  # not left serving after the bench gives up on it
            raise RuntimeError(f"hub did not start in 60 s: {self.output()[-2000:]}")
        # A national backlog loader: writes for every site, so it is registered without a site code.
        private, public, _kid = generate_key(self.data_dir, "bench-loader")
        ClientRegistry(make_engine(database_url)).register(
            "bench-loader", name="benchmark loader", kind="system", jwks=orjson.loads(public.read_bytes()),
            scopes="system/*.crus",
        )
        token = request_token(f"http://127.0.0.1:{self.port}/auth/token", "bench-loader", load_key(private))["access_token"]
        self.headers = {"content-type": "application/fhir+json", "authorization": f"Bearer {token}"}

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def post_all(base: str, headers: dict[str, str], bundles: list[bytes], concurrency: int, label: str,
             *, accepted: Callable[[httpx.Response], bool] = lambda r: r.status_code == 200) -> tuple[float, list[str]]:
    """POST each body to `base` from `concurrency` threads; the wall time and every answer not `accepted`."""
    local = threading.local()
    failures: list[str] = []

    def client() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(timeout=120, headers={**headers, "prefer": "return=minimal"})
        return local.client

    def send(body: bytes) -> None:
        try:
            r = client().post(base, content=body)
        except httpx.TransportError as exc:
            failures.append(f"transport error: {exc}")
            return
        if not accepted(r):
            failures.append(f"{r.status_code}: {r.text[:300]}")

    with Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("bundles", total=len(bundles))
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            for _ in pool.map(send, bundles):
                progress.advance(task)
        elapsed = time.perf_counter() - started
    return elapsed, failures


def count(base: str, headers: dict[str, str], rtype: str) -> int:
    return httpx.get(f"{base}/{rtype}", params={"_summary": "count"}, headers=headers, timeout=60).json()["total"]


def register_sites(base: str, headers: dict[str, str], site_resources: list[dict]) -> None:
    with httpx.Client(timeout=60, headers=headers) as client:
        for res in sorted(site_resources, key=lambda r: r["resourceType"] != "Organization"):
            r = client.put(f"{base}/{res['resourceType']}/{res['id']}", content=orjson.dumps(res))
            r.raise_for_status()


def run_backend(name: str, database_url: str, site_resources: list[dict], bundles: list[bytes], args) -> dict:
    hub = Hub(database_url, args.workers)
    try:
        register_sites(hub.base, hub.headers, site_resources)
        elapsed, failures = post_all(hub.base, hub.headers, bundles, args.concurrency, f"{name}: posting")
        stored_imm = count(hub.base, hub.headers, "Immunization")
        stored_pat = count(hub.base, hub.headers, "Patient")
    finally:
        hub.stop()
        if hub.proc.returncode not in (0, -15):
            console.print(hub.output()[-3000:])
    return {"elapsed": elapsed, "failures": failures, "immunizations": stored_imm, "patients": stored_pat}


def postgres_database(admin_url: str):
    return fresh_postgres_database(admin_url, "vaxhub_bench")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=6000, help="synthetic people to send (about 2.5 doses each)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2, help="hub worker processes")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads posting bundles")
    parser.add_argument("--postgres-url", default=os.environ.get("VAXHUB_BENCH_POSTGRES_URL"), help="admin URL; a fresh database is created")
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()

    console.print(f"building bundles for {args.people} people …")
    site_resources, bundles, resources, immunizations = build_workload(args.people, args.seed)
    console.print(f"{len(bundles)} transaction bundles, {resources} resources ({immunizations} Immunizations)")
    floor = measure_floor(bundles)

    table = Table(title="vaxhub ingest: transaction Bundles of 100 entries over HTTP")
    for col in ("backend", "seconds", "resources/s", "Immunizations/s", "floor resources/s", "hub/floor", "stored Imm.", "errors"):
        table.add_column(col, justify="right")
    ok = True
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        if backend == "sqlite":
            folder = Path(tempfile.mkdtemp(prefix="vaxhub-bench-"))
            url, cleanup = f"sqlite:///{folder / 'bench.db'}", lambda: shutil.rmtree(folder, ignore_errors=True)
        elif backend == "postgres":
            if not args.postgres_url:
                console.print("[yellow]postgres skipped: no --postgres-url")
                continue
            url, cleanup = postgres_database(args.postgres_url)
        else:
            parser.error(f"unknown backend {backend}")
        try:
            result = run_backend(backend, url, site_resources, bundles, args)
        finally:
            cleanup()
        rate = resources / result["elapsed"]
        imm_rate = immunizations / result["elapsed"]
        complete = result["immunizations"] == immunizations and not result["failures"]
        ok &= complete
        table.add_row(
            backend, f"{result['elapsed']:.1f}", f"{rate:,.0f}", f"{imm_rate:,.0f}", f"{floor:,.0f}", f"{rate / floor:.2f}",
            f"{result['immunizations']}/{immunizations}", str(len(result["failures"])),
        )
        for failure in result["failures"][:3]:
            console.print(f"[red]{backend}: {failure}")
    console.print(table)
    console.print(f"machine: {os.cpu_count()} cores; hub workers {args.workers}; client threads {args.concurrency}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
