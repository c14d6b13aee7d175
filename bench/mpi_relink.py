"""Batch re-linking: a million site records linked again in one run.

A scratch database gets `--records` synthetic site records (manual-entry
errors, twins, namesakes, households; `bench/mpi_population.py`), each in a
person of its own, as after a backlog was loaded without linking. Then
`relink_all` (what `vaxhub mpi relink` runs) reads every record's keys,
links them in memory with the core linker, and writes the result back in
bulk. Printed: total time and records/s with the time of each stage, and
the pairwise precision and recall against the records' true persons. The
golden Patients of the persons touched are left for the worker (`--goldens`
rebuilds them in this run and times that too).

The floor measured in the same run is reading the keys alone (the stage no
batch can skip) and the core linker on keys already in memory.

    .venv/bin/python bench/mpi_relink.py --records 1000000 --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.databases import drop_unless_kept, fresh_postgres_database  # noqa: E402
from bench.mpi_population import load_population, psycopg_dsn  # noqa: E402
from vaxhub.hub.audit.trail import AuditTrail  # noqa: E402
from vaxhub.hub.mpi.batch import relink_all  # noqa: E402
from vaxhub.hub.mpi.index import RECORD  # noqa: E402
from vaxhub.hub.mpi.service import MasterPatientIndex  # noqa: E402
from vaxhub.hub.storage.engine import make_engine, upgrade  # noqa: E402

console = Console(width=130)


def pair_quality(truth: dict[str, str], found: dict[str, str]) -> tuple[float, float, int, int]:
    """Pairwise precision and recall of "same person", counted per true and found group."""
    true_groups, found_groups = defaultdict(list), defaultdict(list)
    for record, person in truth.items():
        true_groups[person].append(record)
        found_groups[found.get(record)].append(record)
    pairs = lambda groups: sum(len(g) * (len(g) - 1) // 2 for g in groups.values())  # noqa: E731
    both = defaultdict(int)
    for record, person in truth.items():
        both[(person, found.get(record))] += 1
    right = sum(n * (n - 1) // 2 for n in both.values())
    made, true = pairs(found_groups), pairs(true_groups)
    return right / max(made, 1), right / max(true, 1), made - right, true


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--postgres-url", required=True, help="an admin URL; a scratch database is created beside it")
    parser.add_argument("--goldens", action="store_true", help="also rebuild the golden Patients of the persons touched")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()

    url, drop = fresh_postgres_database(args.postgres_url, "vaxhub_bench_mpi_relink")
    engine = make_engine(url, pool_size=4)
    try:
        upgrade(engine)
        started = time.perf_counter()
        loaded = load_population(psycopg_dsn(url), records=args.records, linked=False, keep_truth=True,
                                 progress=lambda done, total, n: console.print(f"  loaded chunk {done}/{total}: {n:,} records"))
        console.print(f"loaded {loaded.records:,} records, one person each, in {time.perf_counter() - started:.0f} s")

        report = relink_all(engine, progress=lambda stage, done, total: None)
        with engine.connect() as conn:
            found = dict(conn.execute(select(RECORD.c.record_id, RECORD.c.person_id)).all())
        precision, recall, wrong, true_pairs = pair_quality(loaded.truth, found)

        golden_seconds = None
        if args.goldens:
            mpi = MasterPatientIndex(engine, trail=AuditTrail(engine))
            t0 = time.perf_counter()
            while mpi.rebuild_goldens(1000):
                pass
            golden_seconds = time.perf_counter() - t0

        s = report.seconds
        table = Table("stage", "seconds")
        for key in ("read", "link.prepare", "link.blocking", "link.scoring", "link.clustering", "link", "write", "total"):
            if key in s:
                table.add_row(key, f"{s[key]:.1f}")
        console.print(table)
        rate = report.records / s["total"]
        console.print(f"re-linked {report.records:,} records in {s['total']:.1f} s = {rate:,.0f} records/s "
                      f"(target: under 300 s -> {'met' if s['total'] < 300 else 'MISSED'})")
        console.print(f"floor in the same run: reading the keys {s['read']:.1f} s; the core linker in memory "
                      f"{s.get('link.total', 0):.1f} s ({report.candidate_pairs:,} candidate pairs)")
        console.print(f"{report.clusters:,} persons, {report.moved:,} records moved, {report.reviews:,} review pairs; "
                      f"pairwise precision {precision:.5f}, recall {recall:.4f} ({wrong:,} wrong pairs of {true_pairs:,} true pairs)")
        if golden_seconds is not None:
            console.print(f"golden Patients of {report.persons_touched:,} persons rebuilt in {golden_seconds:.0f} s "
                          f"({report.persons_touched / golden_seconds:,.0f}/s)")
    finally:
        engine.dispose()
        drop_unless_kept(drop, url, keep=args.keep, say=console.print)


if __name__ == "__main__":
    main()
