"""Online linking: one incoming record linked against a million persons in PostgreSQL.

A scratch database gets `--persons` synthetic persons (about 1.9 site records
each, linked by truth, with their golden Patients, blocks and term counts;
`bench/mpi_population.py`). Then `--incoming` held-out records, each a
person's last site record, are written as a site would (the FHIR store with
the link outbox) and linked one at a time through the real service
(`MasterPatientIndex.link`: advisory lock, candidates by blocking keys, term
counts, scoring, link row, blocks, terms, history, golden Patient rewrite and
its AuditEvent, commit). Printed: median and p95 milliseconds per link, the
floor measured in the same run (one indexed primary-key SELECT round trip on
a held connection, and the same in its own transaction), the ratios, and how
many records landed in their true person.

    .venv/bin/python bench/mpi_online.py --persons 1000000 --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres

The scratch database is dropped at the end (`--keep` keeps it).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import select, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.databases import drop_unless_kept, fresh_postgres_database  # noqa: E402
from bench.mpi_population import MEAN_COPIES, load_population, psycopg_dsn  # noqa: E402
from vaxhub.hub.audit.trail import AuditTrail  # noqa: E402
from vaxhub.hub.mpi.enqueue import LinkEnqueuer  # noqa: E402
from vaxhub.hub.mpi.service import MasterPatientIndex  # noqa: E402
from vaxhub.hub.storage.engine import make_engine, upgrade  # noqa: E402
from vaxhub.hub.storage.store import RESOURCE, FhirStore  # noqa: E402

console = Console(width=130)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--incoming", type=int, default=1000, help="records linked one at a time")
    parser.add_argument("--warmup", type=int, default=50, help="links not counted (cold caches)")
    parser.add_argument("--inline", type=int, default=200, help="further records linked with the golden rewrite in the same transaction")
    parser.add_argument("--postgres-url", required=True, help="an admin URL; a scratch database is created beside it")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()

    url, drop = fresh_postgres_database(args.postgres_url, "vaxhub_bench_mpi_online")
    engine = make_engine(url, pool_size=4)
    try:
        upgrade(engine)
        records = round(args.persons * MEAN_COPIES)
        started = time.perf_counter()
        loaded = load_population(
            psycopg_dsn(url), records=records, linked=True, hold_out=args.incoming + args.warmup + args.inline,
            progress=lambda done, total, n: console.print(f"  loaded chunk {done}/{total}: {n:,} records"),
        )
        load_seconds = time.perf_counter() - started
        with engine.connect() as conn:
            sizes = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in ("mpi_person", "mpi_record", "mpi_block", "mpi_term")}
            db_size = conn.execute(text("SELECT pg_size_pretty(pg_database_size(current_database()))")).scalar_one()
        console.print(f"loaded {loaded.records:,} records of {loaded.persons:,} persons in {load_seconds:.0f} s "
                      f"({sizes['mpi_block']:,} blocks, {sizes['mpi_term']:,} terms; database {db_size})")

        store = FhirStore(engine, listeners=[LinkEnqueuer()])
        mpi = MasterPatientIndex(engine, trail=AuditTrail(engine))
        linker = mpi.linker()
        timings, inline, golden_ms, goldens = [], [], 0.0, 0
        right, wrong, alone, actions = 0, 0, 0, {}
        for n, incoming in enumerate(loaded.held_out):
            with store.writer() as w:  # the site's write, with its link outbox row
                w.update("Patient", incoming.record_id, incoming.patient)
            as_worker = n < args.warmup + args.incoming
            t0 = time.perf_counter()
            outcome = mpi.link(incoming.record_id, linker=linker, inline_golden=not as_worker)
            elapsed = (time.perf_counter() - t0) * 1000
            if as_worker and n % 50 == 49:  # the worker rewrites the touched golden Patients at the end of a pass
                t0 = time.perf_counter()
                done = mpi.rebuild_goldens(500)
                if n >= args.warmup:
                    golden_ms += (time.perf_counter() - t0) * 1000
                    goldens += done
            if n < args.warmup:
                continue
            (timings if as_worker else inline).append(elapsed)
            actions[outcome.action] = actions.get(outcome.action, 0) + 1
            if outcome.person_id == incoming.person_id:
                right += 1
            elif outcome.action == "linked":
                wrong += 1
            else:
                alone += 1

        floor_held, floor_txn = [], []
        ids = [i.record_id for i in loaded.held_out]
        with engine.connect() as conn:
            for record_id in random.Random(1).sample(ids, min(len(ids), len(timings))):
                t0 = time.perf_counter()
                conn.execute(select(RESOURCE.c.version).where(RESOURCE.c.res_type == "Patient", RESOURCE.c.res_id == record_id)).scalar()
                floor_held.append((time.perf_counter() - t0) * 1000)
        for record_id in ids[: len(timings)]:
            t0 = time.perf_counter()
            with engine.begin() as conn:
                conn.execute(select(RESOURCE.c.version).where(RESOURCE.c.res_type == "Patient", RESOURCE.c.res_id == record_id)).scalar()
            floor_txn.append((time.perf_counter() - t0) * 1000)

        median, p95 = statistics.median(timings), percentile(timings, 0.95)
        table = Table("measure", "median ms", "p95 ms", "link / this")
        table.add_row("link one incoming record (MasterPatientIndex.link, as the worker does)", f"{median:.2f}", f"{p95:.2f}", "1.0")
        if goldens:
            table.add_row(f"  + its golden Patient rewritten in the worker's pass ({goldens} persons, per person)", f"{golden_ms / goldens:.2f}", "", "")
        if inline:
            table.add_row(f"link with the golden Patient rewritten in the same transaction ({len(inline)} records)",
                          f"{statistics.median(inline):.2f}", f"{percentile(inline, 0.95):.2f}", "")
        for name, floor in (("floor: primary-key SELECT, held connection", floor_held),
                            ("floor: same SELECT in its own transaction", floor_txn)):
            table.add_row(name, f"{statistics.median(floor):.3f}", f"{percentile(floor, 0.95):.3f}", f"{median / statistics.median(floor):.0f}x")
        console.print(table)
        console.print(f"{len(timings) + len(inline)} records linked against {loaded.persons:,} persons ({loaded.records:,} records): "
                      f"{right} into their true person, {alone} on their own (new person or review), {wrong} into another person; "
                      f"actions {actions}")
        console.print(f"target: median under 20 ms -> {'met' if median < 20 else 'MISSED'}")
    finally:
        engine.dispose()
        drop_unless_kept(drop, url, keep=args.keep, say=console.print)


if __name__ == "__main__":
    main()
