"""What the health-book app's requests ask of the database, the way the hub
reads now against the way it read before, alternating in one process on one
database:

- `$everything`: now one statement built once (`compartments_in_reach`), the
  Patient among its compartments; before, the Patient read on its own
  (`FhirStore.read`), then the compartments with a statement built per
  request (`FhirStore.compartments` of `golden_reach(id)`);
- a citizen's reach (every FHIR request of a citizen's token): now
  `person_compartment_ids`, built once; before, `person_compartment(id)`
  built per request;
- the records a certificate counts (every download): now
  `linked_record_ids`, one statement built once; before, the person and then
  its records, two statements built per request.

`--people` site Patients are stored with `--doses` Immunizations each, every
two of them linked to one person; every read checks that both ways found the
same. The figures are this process's CPU and wall time per read (the
client's side: SQLAlchemy, psycopg), so the HTTP server's noise is not in
them; PostgreSQL's own work is in the wall time.

    .venv/bin/python bench/citizen_reads.py --people 500 --reads 5000
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
from bench.databases import scratch_engine  # noqa: E402
from sqlalchemy import insert, select  # noqa: E402

from tests.builders import immunization, patient  # noqa: E402
from vaxhub.hub.mpi.reach import compartments_in_reach  # noqa: E402
from vaxhub.hub.storage.mpi_tables import MpiRecordRow  # noqa: E402
from vaxhub.hub.storage.person_reach import golden_reach, linked_record_ids, person_compartment, person_compartment_ids  # noqa: E402
from vaxhub.hub.storage.store import FhirStore  # noqa: E402

console = Console(width=120)
RECORD = MpiRecordRow.__table__


def _now(store: FhirStore, pid: str) -> list[tuple[str, str]]:
    found = compartments_in_reach(store, pid)
    assert any(s.rtype == "Patient" and s.id == pid for s in found)
    return sorted((s.rtype, s.id) for s in found)


def _before(store: FhirStore, pid: str) -> list[tuple[str, str]]:
    store.read("Patient", pid)
    return sorted((s.rtype, s.id) for s in store.compartments(golden_reach(pid)))


def _linked_before(conn, patient_id: str) -> list[str]:  # noqa: ANN001
    person = conn.execute(select(RECORD.c.person_id).where(RECORD.c.record_id == patient_id)).scalar() or patient_id
    records = sorted(conn.execute(select(RECORD.c.record_id).where(RECORD.c.person_id == person)).scalars())
    if patient_id in records:
        records.remove(patient_id)
        return [patient_id, *records]
    return records or [patient_id]


def _compare(title: str, ways: dict, picks: list[str], check) -> tuple[str, float]:  # noqa: ANN001
    for pid in picks[:200]:  # warm the pool, the statement caches and PostgreSQL's
        answers = [read(pid) for read in ways.values()]
        assert check(*answers), f"{title}: the two ways found different answers"
    cpu = dict.fromkeys(ways, 0.0)
    wall = dict.fromkeys(ways, 0.0)
    for i, pid in enumerate(picks):
        order = list(ways.items()) if i % 2 == 0 else list(ways.items())[::-1]
        for name, read in order:
            c0, w0 = time.process_time(), time.perf_counter()
            read(pid)
            cpu[name] += time.process_time() - c0
            wall[name] += time.perf_counter() - w0
    table = Table(title=f"{title}, {len(picks):,} reads each way, alternating")
    for col in ("way", "client CPU ms", "wall ms"):
        table.add_column(col, justify="left" if col == "way" else "right")
    for name in ways:
        table.add_row(name, f"{cpu[name] * 1000 / len(picks):.3f}", f"{wall[name] * 1000 / len(picks):.3f}")
    console.print(table)
    now, before = ways
    console.print(f"now / before: {cpu[now] / cpu[before]:.2f} of the client's CPU, {wall[now] / wall[before]:.2f} of the wall time")
    return title, cpu[now] / cpu[before]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--people", type=int, default=500)
    parser.add_argument("--doses", type=int, default=2)
    parser.add_argument("--reads", type=int, default=5000)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    with scratch_engine(args.postgres_url, "vaxhub_citizen_reads", keep=args.keep, say=console.print) as engine:
        store = FhirStore(engine)
        ids = []
        for n in range(args.people):
            pid = store.run_unit(lambda w, n=n: w.create(patient(f"0790{n:08d}"))).stored.id
            for d in range(args.doses):
                store.run_unit(lambda w, pid=pid, n=n, d=d: w.create(immunization(f"Patient/{pid}", f"E-{n}-{d}")))
            ids.append(pid)
        with engine.begin() as conn:  # every two site Patients one person, as the master patient index links them
            conn.execute(insert(RECORD), [{"record_id": pid, "person_id": f"person-{n // 2}", "state": "linked", "locked": False,
                                           "queued_at": store.clock(), "attempts": 0} for n, pid in enumerate(ids)])
        rng = random.Random(5)
        picks = [rng.choice(ids) for _ in range(args.reads)]
        _compare(f"$everything of one of {args.people} people ({args.doses} doses each)",
                 {"now: one statement built once": lambda pid: _now(store, pid),
                  "before: read, then compartments built per request": lambda pid: _before(store, pid)}, picks, lambda a, b: a == b)
        with engine.connect() as conn:
            _compare("a citizen's reach (person_compartment_ids)",
                     {"now: built once": lambda pid: person_compartment_ids(conn, pid),
                      "before: built per request": lambda pid: frozenset(conn.execute(person_compartment(pid)).scalars())},
                     picks, lambda a, b: a == b)
            _compare("the records a certificate counts (linked_record_ids)",
                     {"now: one statement built once": lambda pid: linked_record_ids(conn, pid),
                      "before: two statements built per request": lambda pid: _linked_before(conn, pid)}, picks, lambda a, b: a == b)
    return 0


if __name__ == "__main__":
    sys.exit(main())
