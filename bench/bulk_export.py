"""Bulk export throughput: resources per second written to NDJSON by one
export worker (`vaxhub.hub.bulk_export.runner`) from PostgreSQL.

Loads a synthetic population into a fresh PostgreSQL database (transaction
Bundles through the store, as sites send them), then alternates, `--rounds`
times, a system-level `$export` job run by the worker and the floor: one
`COPY (SELECT content::text FROM resource …) TO STDOUT` of the same rows into
a file (the database's own fastest way out, no paging, no Python per row).
Prints the medians and their ratio.

    .venv/bin/python bench/bulk_export.py --people 10000 --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from sqlalchemy import func, select
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.databases import fresh_postgres_database  # noqa: E402
from vaxhub.fhir.synthetic import generate_population, population_bundles  # noqa: E402
from vaxhub.hub.bulk_export.jobs import ExportJobs  # noqa: E402
from vaxhub.hub.bulk_export.request import SYSTEM, ExportRequest, exportable_types  # noqa: E402
from vaxhub.hub.bulk_export.runner import ExportOptions, ExportRunner  # noqa: E402
from vaxhub.hub.operations.transaction import process_bundle  # noqa: E402
from vaxhub.hub.storage.engine import make_engine, upgrade  # noqa: E402
from vaxhub.hub.storage.store import RESOURCE, FhirStore  # noqa: E402

console = Console(width=120)


def load(store: FhirStore, people: int) -> int:
    """The population as self-contained transaction Bundles; returns how many resources are stored."""
    for bundle in population_bundles(generate_population(people, seed=11)):
        process_bundle(store, bundle, base="http://bench/fhir")
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(RESOURCE).where(RESOURCE.c.deleted.is_(False))).scalar_one()


def export_once(store: FhirStore, jobs: ExportJobs, folder: Path, page_size: int) -> tuple[int, float]:
    request = ExportRequest(SYSTEM, None, None, None)
    jobs.create("bench", request, exportable_types(SYSTEM), "http://bench/fhir/$export")
    runner = ExportRunner(store, jobs, ExportOptions(folder, page_size=page_size), name="bench")
    started = time.perf_counter()
    assert runner.run_next() == "done"
    elapsed = time.perf_counter() - started
    lines = sum(sum(1 for _ in p.open("rb")) for p in folder.rglob("*.ndjson"))
    return lines, elapsed


def copy_once(engine, target: Path) -> tuple[int, float]:
    raw = engine.raw_connection()
    try:
        started = time.perf_counter()
        with raw.cursor() as cur, target.open("wb") as out:
            with cur.copy("COPY (SELECT content::text FROM resource WHERE NOT deleted ORDER BY res_type, res_id) TO STDOUT") as copy:
                for block in copy:
                    out.write(block)
        elapsed = time.perf_counter() - started
    finally:
        raw.close()
    return sum(1 for _ in target.open("rb")), elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres-url", required=True, help="An admin URL; a fresh database is made and dropped.")
    parser.add_argument("--people", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--page-size", type=int, default=1000)
    args = parser.parse_args()

    url, drop = fresh_postgres_database(args.postgres_url, "vaxhub_bench_export")
    engine = make_engine(url)
    try:
        upgrade(engine)
        store = FhirStore(engine)
        started = time.perf_counter()
        loaded = load(store, args.people)
        console.print(f"loaded {loaded:,} resources in {time.perf_counter() - started:.0f} s")
        jobs = ExportJobs(engine, settle_seconds=0, max_active_per_client=10**6)
        hub_rates, floor_rates = [], []
        with tempfile.TemporaryDirectory() as scratch:
            for round_ in range(args.rounds):
                count, seconds = export_once(store, jobs, Path(scratch) / f"export-{round_}", args.page_size)
                assert count == loaded, (count, loaded)
                hub_rates.append(count / seconds)
                count, seconds = copy_once(engine, Path(scratch) / f"copy-{round_}.ndjson")
                assert count == loaded, (count, loaded)
                floor_rates.append(count / seconds)
        hub, floor = statistics.median(hub_rates), statistics.median(floor_rates)
        table = Table(title=f"bulk export, {loaded:,} resources, PostgreSQL (median of {args.rounds})")
        for column in ("what", "resources/s", "ratio to floor"):
            table.add_column(column, justify="right" if column != "what" else "left")
        table.add_row(f"export worker ($export, system level, pages of {args.page_size})", f"{hub:,.0f}", f"{hub / floor:.2f}")
        table.add_row("floor: COPY (SELECT content::text …) TO STDOUT into a file", f"{floor:,.0f}", "1.00")
        console.print(table)
    finally:
        engine.dispose()
        drop()


if __name__ == "__main__":
    main()
