"""Link worker throughput: records/s draining a queue against a population in PostgreSQL.

A scratch database gets `--persons` synthetic persons (about 1.9 site records
each, linked by truth, with golden Patients, blocks and term counts;
`bench/mpi_population.py`). Each phase then writes `--incoming` records as
sites do (the FHIR store with the link outbox, 100 Patients per transaction):
62 % are held-out last records of loaded persons, 38 % records of people the
index has never seen (another seed's population), as in the national load
test. Then 1 (and 2, ...) `LinkWorker` processes drain the queue to idle,
golden Patients and their AuditEvents included, and the phase prints
records/s, how many landed in their true person, and checks that every record
was linked once and no person was made twice for one incoming person.

Floors measured in the same run, on the same rows: one `UPDATE mpi_record`
per record in its own transaction (what any one-record-per-commit worker pays
at least), and the same updates 200 per transaction.

    .venv/bin/python bench/mpi_worker.py --persons 50000 --incoming 1000 --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres

The scratch database is dropped at the end (`--keep` keeps it).
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
import zlib
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select, update

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.databases import drop_unless_kept, fresh_postgres_database  # noqa: E402
from bench.mpi_population import MEAN_COPIES, load_population, psycopg_dsn  # noqa: E402
from vaxhub.hub.audit.trail import AuditTrail  # noqa: E402
from vaxhub.hub.mpi.enqueue import LinkEnqueuer  # noqa: E402
from vaxhub.hub.mpi.service import MasterPatientIndex  # noqa: E402
from vaxhub.hub.mpi.worker import LinkWorker  # noqa: E402
from vaxhub.hub.storage.engine import make_engine, upgrade  # noqa: E402
from vaxhub.hub.storage.mpi_tables import MpiEventRow, MpiPersonRow, MpiRecordRow  # noqa: E402
from vaxhub.hub.storage.store import FhirStore  # noqa: E402
from vaxhub.identity.population import generate_linkage_population  # noqa: E402

console = Console(width=140)
RECORD = MpiRecordRow.__table__
PERSON = MpiPersonRow.__table__
EVENT = MpiEventRow.__table__
NEW_SHARE = 0.38


def _drain(url: str, batch: int, start, results) -> None:  # noqa: ANN001 - multiprocessing primitives
    engine = make_engine(url, pool_size=2)
    mpi = MasterPatientIndex(engine, trail=AuditTrail(engine))
    worker = LinkWorker(mpi, batch=batch, backoff_seconds=0.2)
    start.wait()
    t0, cpu0 = time.perf_counter(), time.process_time()
    linked = worker.run(until_idle=True, poll_seconds=0.05)
    results.put((linked, worker.failed, time.perf_counter() - t0, time.process_time() - cpu0))
    engine.dispose()


def _new_people(count: int, seed: int) -> list[tuple[str, str, dict]]:
    """First records of people drawn from another seed: persons the index does not hold."""
    population = generate_linkage_population(int(count * MEAN_COPIES * 1.3) + 20, seed=seed)
    first: dict[str, object] = {}
    for record in population.records:
        first.setdefault(record.person_id, record)
    out = []
    for n, (person, record) in enumerate(list(first.items())[:count]):
        record_id = f"new{seed}-{n}"
        patient = {k: v for k, v in record.patient.items() if k not in ("id", "meta", "managingOrganization")}
        # Site numbers are unique per site: another seed's people may reuse the loaded ones.
        patient["identifier"] = [{**i, "value": f"{i['value']}-{record_id}"} if "/sid/site/" in (i.get("system") or "") else i
                                 for i in patient.get("identifier") or []]
        out.append((record_id, f"new:{person}", patient))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=50_000)
    parser.add_argument("--incoming", type=int, default=1000, help="records queued per phase")
    parser.add_argument("--workers", default="1,2", help="worker processes per phase, comma-separated")
    parser.add_argument("--batch", type=int, default=200, help="LinkWorker batch (records claimed per pass)")
    parser.add_argument("--postgres-url", required=True, help="an admin URL; a scratch database is created beside it")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()
    phases = [int(w) for w in args.workers.split(",")]
    held_per_phase = args.incoming - round(args.incoming * NEW_SHARE)

    url, drop = fresh_postgres_database(args.postgres_url, "vaxhub_bench_mpi_worker")
    engine = make_engine(url, pool_size=4)
    try:
        upgrade(engine)
        loaded = load_population(psycopg_dsn(url), records=round(args.persons * MEAN_COPIES), linked=True,
                                 hold_out=held_per_phase * len(phases) + 200)
        console.print(f"loaded {loaded.records:,} records of {loaded.persons:,} persons")
        store = FhirStore(engine, listeners=[LinkEnqueuer()])
        table = Table("measure", "records", "seconds", "records/s", "right person", "wrong person", "known, filed alone", "persons made", "failed")
        ctx = multiprocessing.get_context("spawn")

        for phase, workers in enumerate(phases):
            held = loaded.held_out[phase * held_per_phase:(phase + 1) * held_per_phase]
            fresh = _new_people(args.incoming - len(held), seed=9000 + phase)
            incoming = [(i.record_id, i.person_id, i.patient) for i in held] + fresh
            incoming.sort(key=lambda r: zlib.crc32(r[0].encode()))  # new and known people interleaved, the same way each run
            truth = {record_id: person for record_id, person, _ in incoming}
            for start in range(0, len(incoming), 100):
                with store.writer() as w:
                    for record_id, _person, patient in incoming[start:start + 100]:
                        w.update("Patient", record_id, patient)
            with engine.connect() as conn:
                persons_before = conn.execute(select(func.count()).select_from(PERSON)).scalar_one()
                events_before = conn.execute(select(func.max(EVENT.c.id))).scalar() or 0
            go, results = ctx.Event(), ctx.Queue()
            procs = [ctx.Process(target=_drain, args=(url, args.batch, go, results)) for _ in range(workers)]
            for p in procs:
                p.start()
            time.sleep(3)  # imports and connections, outside the measure
            t0 = time.perf_counter()
            go.set()
            outs = [results.get() for _ in procs]
            for p in procs:
                p.join()
            seconds = time.perf_counter() - t0
            ids = list(truth)
            with engine.connect() as conn:
                rows = conn.execute(select(RECORD.c.record_id, RECORD.c.person_id, RECORD.c.state).where(RECORD.c.record_id.in_(ids))).all()
                persons_made = conn.execute(select(func.count()).select_from(PERSON)).scalar_one() - persons_before
                linked_twice = conn.execute(
                    select(func.count()).select_from(
                        select(EVENT.c.record_id).where(EVENT.c.id > events_before, EVENT.c.action.in_(("auto-link", "new-person")))
                        .group_by(EVENT.c.record_id).having(func.count() > 1).subquery())).scalar_one()
                stale = conn.execute(select(func.count()).where(PERSON.c.golden_stale.is_(True))).scalar_one()
            sharing: dict[str, int] = {}
            for r in rows:
                sharing[r.person_id] = sharing.get(r.person_id, 0) + 1
            right = wrong = own = 0
            for r in rows:
                known = not truth[r.record_id].startswith("new:")
                if known and r.person_id == truth[r.record_id]:
                    right += 1
                elif r.person_id is None:
                    continue
                elif r.person_id.startswith("p") or sharing[r.person_id] > 1:
                    wrong += 1  # another loaded person, or a person shared by two incoming people
                elif known:
                    own += 1  # a known person's record filed alone (new person or review): safe, not wrong
                else:
                    right += 1  # a new person's record in a person of its own
            queued = sum(1 for r in rows if r.state != "linked")
            failed = sum(o[1] for o in outs)
            table.add_row(f"drain {len(incoming)} queued records, {workers} worker process{'es' if workers > 1 else ''}",
                          str(len(rows) - queued), f"{seconds:.1f}", f"{(len(rows) - queued) / seconds:.0f}", str(right), str(wrong),
                          str(own), str(persons_made), str(failed))
            console.print(f"phase {phase + 1}: {workers} worker(s): {len(rows) - queued} linked, {queued} not linked, "
                          f"{linked_twice} records linked twice, {stale} golden Patients left stale, per worker {[o[0] for o in outs]}; "
                          f"worker CPU {sum(o[3] for o in outs) * 1000 / max(1, len(rows) - queued):.2f} ms per record linked "
                          "(goldens included: what a worker needs of a core to keep up)")

        # Floors on the same rows: the least a worker that commits per record pays, and per 200.
        ids = [i.record_id for i in loaded.held_out[: args.incoming]]
        t0 = time.perf_counter()
        for record_id in ids:
            with engine.begin() as conn:
                conn.execute(update(RECORD).where(RECORD.c.record_id == record_id).values(attempts=0))
        one = time.perf_counter() - t0
        t0 = time.perf_counter()
        for start in range(0, len(ids), 200):
            with engine.begin() as conn:
                for record_id in ids[start:start + 200]:
                    conn.execute(update(RECORD).where(RECORD.c.record_id == record_id).values(attempts=0))
        batched = time.perf_counter() - t0
        table.add_row("floor: one UPDATE mpi_record per transaction", str(len(ids)), f"{one:.1f}", f"{len(ids) / one:.0f}", "", "", "", "", "")
        table.add_row("floor: the same UPDATEs, 200 per transaction", str(len(ids)), f"{batched:.1f}", f"{len(ids) / batched:.0f}", "", "", "", "", "")
        console.print(table)
        console.print("known = held-out last records of loaded persons; wrong person = joined another loaded person, or a person "
                      "shared by two incoming people; known, filed alone = a new person or a review (safe)")
    finally:
        engine.dispose()
        drop_unless_kept(drop, url, keep=args.keep, say=console.print)


if __name__ == "__main__":
    main()
