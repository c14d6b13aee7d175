"""Bytes on disk per person and per dose on PostgreSQL, for capacity planning.

Starts `vaxhub serve` on a fresh PostgreSQL database, posts a synthetic
population as transaction Bundles (as `bench/ingest.py` does), then reads
`pg_total_relation_size` (table + indexes + TOAST) of every table and divides
by what was stored. The last lines scale the measured figures to a national
registry (default 100 million people and 300 million doses) so that the
README's capacity plan rests on a measurement, not on a guess.

    .venv/bin/python bench/storage_size.py --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from bench.ingest import Hub, build_workload, count, post_all, postgres_database, register_sites  # noqa: E402

console = Console(width=140)

SIZES = text(
    """
    SELECT c.relname, pg_total_relation_size(c.oid), c.reltuples::bigint
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND n.nspname = 'public'
    ORDER BY 2 DESC
    """
)


def gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--postgres-url", default=os.environ.get("VAXHUB_BENCH_POSTGRES_URL"), required=False)
    parser.add_argument("--scale-people", type=float, default=100e6)
    parser.add_argument("--scale-doses", type=float, default=300e6)
    args = parser.parse_args()
    if not args.postgres_url:
        parser.error("--postgres-url is needed (an admin URL; a fresh database is created and dropped)")

    site_resources, bundles, _resources, _immunizations = build_workload(args.people, args.seed)
    url, drop = postgres_database(args.postgres_url)
    try:
        hub = Hub(url, 2)
        try:
            register_sites(hub.base, hub.headers, site_resources)
            _elapsed, failures = post_all(hub.base, hub.headers, bundles, 4, "posting")
            if failures:
                console.print(f"[red]{len(failures)} bundles failed: {failures[:2]}")
                return 1
            patients = count(hub.base, hub.headers, "Patient")
            doses = count(hub.base, hub.headers, "Immunization")
        finally:
            hub.stop()
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))  # reltuples for the row counts
            rows = conn.execute(SIZES).all()
            audit = conn.execute(text("SELECT count(*), avg(pg_column_size(content)) FROM audit_event")).one()
            content = conn.execute(text("SELECT res_type, count(*), avg(pg_column_size(content)) FROM resource GROUP BY res_type ORDER BY 2 DESC")).all()
        engine.dispose()
    finally:
        drop()

    total = sum(size for _name, size, _tuples in rows)
    table = Table(title=f"PostgreSQL bytes on disk after {patients:,} Patients and {doses:,} Immunizations")
    for col in ("table", "rows", "bytes", "share"):
        table.add_column(col, justify="right")
    for name, size, tuples in rows:
        if size >= 64 * 1024:
            table.add_row(name, f"{max(tuples, 0):,}", f"{size:,}", f"{size / total:.0%}")
    console.print(table)
    # A Patient and its doses arrive together; scaling the whole store by doses
    # (the larger count at national scale) errs on the large side, since the
    # national ratio of doses per person is above the sample's.
    per_dose_all_in = total / doses
    console.print(f"{total:,} bytes in all: {total / patients:,.0f} bytes per person with their doses "
                  f"({doses / patients:.2f} doses each), {per_dose_all_in:,.0f} bytes per dose all-in")
    for rtype, n, avg in content:
        console.print(f"{rtype}: {n:,} stored, {avg:,.0f} bytes of JSONB content each (before index rows)")
    # Small tables are dominated by page and index overhead; an AuditEvent's own
    # weight is its content plus its keys, which is what grows with traffic.
    console.print(f"AuditEvent: {audit[0]:,} events, {audit[1] or 0:,.0f} bytes of JSONB content each")
    projected = per_dose_all_in * args.scale_doses
    console.print(f"scaled to {args.scale_people / 1e6:,.0f} M people and {args.scale_doses / 1e6:,.0f} M doses "
                  f"(by doses, the larger driver): about {gib(projected)} before replicas and backups")
    return 0


if __name__ == "__main__":
    sys.exit(main())
