"""What `Patient/{id}/$everything` asks of the store, the way it reads now
against the way it read before, alternating in one process on one database.

- now: one statement built once (`compartments_in_reach`): the compartments
  the Patient reaches, the Patient among them;
- before: the Patient read on its own (`FhirStore.read`), then the same
  compartments with the statement built per request (`FhirStore.compartments`
  of `golden_reach(id)`).

`--people` site Patients are stored with `--doses` Immunizations each;
every read checks that both ways found the same resources. The figures are
this process's CPU and wall time per read (the client's side: SQLAlchemy,
psycopg), so the HTTP server's noise is not in them; PostgreSQL's own work is
in the wall time.

    .venv/bin/python bench/everything_reads.py --people 500 --reads 5000
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from bench.databases import drop_unless_kept, fresh_postgres_database  # noqa: E402
from tests.builders import immunization, patient  # noqa: E402
from vaxhub.hub.mpi.reach import compartments_in_reach  # noqa: E402
from vaxhub.hub.storage.engine import make_engine, upgrade  # noqa: E402
from vaxhub.hub.storage.person_reach import golden_reach  # noqa: E402
from vaxhub.hub.storage.store import FhirStore  # noqa: E402

console = Console(width=120)


def _now(store: FhirStore, pid: str) -> list[tuple[str, str]]:
    found = compartments_in_reach(store, pid)
    assert any(s.rtype == "Patient" and s.id == pid for s in found)
    return sorted((s.rtype, s.id) for s in found)


def _before(store: FhirStore, pid: str) -> list[tuple[str, str]]:
    store.read("Patient", pid)
    return sorted((s.rtype, s.id) for s in store.compartments(golden_reach(pid)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--people", type=int, default=500)
    parser.add_argument("--doses", type=int, default=2)
    parser.add_argument("--reads", type=int, default=5000)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    url, drop = fresh_postgres_database(args.postgres_url, "vaxhub_everything")
    engine = make_engine(url)
    try:
        upgrade(engine)
        store = FhirStore(engine)
        ids = []
        for n in range(args.people):
            pid = store.run_unit(lambda w, n=n: w.create(patient(f"0790{n:08d}"))).stored.id
            for d in range(args.doses):
                store.run_unit(lambda w, pid=pid, n=n, d=d: w.create(immunization(f"Patient/{pid}", f"E-{n}-{d}")))
            ids.append(pid)
        rng = random.Random(5)
        picks = [rng.choice(ids) for _ in range(args.reads)]
        ways = {"now: one statement built once": _now, "before: read, then compartments built per request": _before}
        for pid in picks[:200]:  # warm the pool, the statement caches and PostgreSQL's
            assert _now(store, pid) == _before(store, pid), "the two ways found different resources"
        cpu = dict.fromkeys(ways, 0.0)
        wall = dict.fromkeys(ways, 0.0)
        for i, pid in enumerate(picks):
            order = list(ways.items()) if i % 2 == 0 else list(ways.items())[::-1]
            for name, read in order:
                c0, w0 = time.process_time(), time.perf_counter()
                read(store, pid)
                cpu[name] += time.process_time() - c0
                wall[name] += time.perf_counter() - w0
        table = Table(title=f"$everything's reads of one of {args.people} people ({args.doses} doses each), {args.reads:,} each, alternating")
        for col in ("way", "client CPU ms", "wall ms"):
            table.add_column(col, justify="left" if col == "way" else "right")
        for name in ways:
            table.add_row(name, f"{cpu[name] * 1000 / args.reads:.3f}", f"{wall[name] * 1000 / args.reads:.3f}")
        console.print(table)
        now, before = ways
        console.print(f"now / before: {cpu[now] / cpu[before]:.2f} of the client's CPU, {wall[now] / wall[before]:.2f} of the wall time")
    finally:
        engine.dispose()
        drop_unless_kept(drop, url, keep=args.keep, say=console.print)
    return 0


if __name__ == "__main__":
    sys.exit(main())
