"""Reads recorded at the same time share one audit transaction
(`AuditTrail.record` through `GroupCommit`), and the chains still verify."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import pytest
from prometheus_client import REGISTRY
from psycopg import pq
from sqlalchemy import func, select

from vaxhub.hub.audit.tables import AuditEventRow, AuditPatientRow
from vaxhub.hub.audit.trail import AuditTrail, Interaction
from vaxhub.hub.storage.engine import make_engine


def _read_of(patient_id: str) -> Interaction:
    interaction = Interaction("read", "GET", f"/fhir/Patient/{patient_id}")
    interaction.touched("Patient", patient_id, 1, {"resourceType": "Patient", "id": patient_id})
    return interaction


def test_reads_recorded_together_go_out_in_one_transaction_on_one_chain(engine):
    first_event = threading.Event()
    others_queued = threading.Event()

    def clock() -> datetime:
        # The first event's clock is read inside the first transaction: hold it
        # there until the other readers are waiting, as under load.
        if not first_event.is_set():
            first_event.set()
            assert others_queued.wait(10)
        return datetime.now(timezone.utc).replace(tzinfo=None)

    trail = AuditTrail(engine, chains=8, clock=clock)
    with engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(AuditEventRow)).scalar_one()
    ids: dict[str, str] = {}
    reads = {f"p-{i}": _read_of(f"p-{i}") for i in range(6)}

    def record(patient_id: str) -> None:
        ids[patient_id] = trail.record(reads[patient_id])

    lead = threading.Thread(target=record, args=("p-0",))
    lead.start()
    assert first_event.wait(10)
    rest = [threading.Thread(target=record, args=(p,)) for p in list(reads)[1:]]
    for t in rest:
        t.start()
    deadline = time.monotonic() + 10
    while len(trail._group._waiting) < 5:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    others_queued.set()
    for t in [lead, *rest]:
        t.join(10)

    assert set(ids) == set(reads) and all(r.recorded for r in reads.values())
    with engine.connect() as conn:
        rows = conn.execute(select(AuditEventRow.event_id, AuditEventRow.chain, AuditEventRow.seq)
                            .where(AuditEventRow.event_id.in_(list(ids.values())))).all()
        patients = {r.patient_id for r in conn.execute(select(AuditPatientRow.patient_id))}
        after = conn.execute(select(func.count()).select_from(AuditEventRow)).scalar_one()
    assert after - before == 6
    assert patients >= set(reads)
    later = [r for r in rows if r.event_id != ids["p-0"]]
    assert len({r.chain for r in later}) == 1, "the five waiting reads were not committed together"
    seqs = sorted(r.seq for r in later)
    assert seqs == list(range(seqs[0], seqs[0] + 5))
    assert trail.verify().ok


def test_on_postgresql_a_read_is_recorded_in_one_round_trip(engine, tmp_path):
    """libpq's protocol trace of the recording connection: once the process
    knows its read chain's head, a read's record is one statement (the head
    moved and the events inserted together), sent and answered once."""
    if engine.dialect.name != "postgresql":
        pytest.skip("round trips are PostgreSQL's; SQLite records in a write transaction")
    trace = tmp_path / "protocol.txt"
    traced = make_engine(engine.url.render_as_string(hide_password=False), pool_size=1)
    try:
        trail = AuditTrail(traced, chains=4)
        trail.record(_read_of("p-warm"))  # makes the read chain's head and warms the pool's one connection
        with traced.connect() as conn:
            pgconn = conn.connection.dbapi_connection.pgconn
        with trace.open("w") as handle:
            pgconn.trace(handle.fileno())
            pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
            event_id = trail.record(_read_of("p-1"))
            pgconn.untrace()  # flushes what libpq buffered
        lines = trace.read_text().splitlines()
        directions = [line[0] for line in lines if line[:2] in ("F\t", "B\t")]
    finally:
        traced.dispose()

    # Each time the client goes from sending to receiving is one round trip.
    round_trips = sum(1 for sent, received in zip(directions, directions[1:]) if (sent, received) == ("F", "B"))
    assert round_trips == 1, "".join(directions)
    assert not any("BEGIN" in line or "COMMIT" in line for line in lines if line.startswith("F\t")), "a transaction was opened for the read"
    assert trail.verify().ok
    with engine.connect() as conn:
        chain = conn.execute(select(AuditEventRow.chain).where(AuditEventRow.event_id == event_id)).scalar_one()
        assert "p-1" in {r.patient_id for r in conn.execute(select(AuditPatientRow.patient_id))}
    assert 4 <= chain < 8, "a read's event went to a writers' chain"


def _chain_seqs(engine) -> dict[int, list[int]]:
    with engine.connect() as conn:
        rows = conn.execute(select(AuditEventRow.chain, AuditEventRow.seq).order_by(AuditEventRow.chain, AuditEventRow.seq)).all()
    chains: dict[int, list[int]] = {}
    for chain, seq in rows:
        chains.setdefault(chain, []).append(seq)
    return chains


def test_two_processes_on_one_read_chain_neither_overwrites_the_other(engine):
    """Two trails (two API processes) that remember the same chain's head: the
    second appends after the first; the first, whose head is then stale,
    changes nothing on that chain, moves to another read chain and appends
    there. Every event is stored once and the chains verify."""
    if engine.dialect.name != "postgresql":
        pytest.skip("read chains are PostgreSQL's")
    first, second = AuditTrail(engine, chains=2), AuditTrail(engine, chains=2)
    first._read_chains.chain = second._read_chains.chain = 2
    ids = [first.record(_read_of("p-a1")), second.record(_read_of("p-b1")), second.record(_read_of("p-b2"))]
    assert first._read_chains.moves == 0 and second._read_chains.moves == 0
    moves_before = REGISTRY.get_sample_value("vaxhub_audit_read_chain_moves_total") or 0.0
    ids.append(first.record(_read_of("p-a2")))  # remembers event 1 of chain 2, which is now at 3

    assert first._read_chains.moves == 1 and first._read_chains.chain == 3
    assert REGISTRY.get_sample_value("vaxhub_audit_read_chain_moves_total") == moves_before + 1  # what operators see on /metrics
    with engine.connect() as conn:
        stored = {r.event_id: (r.chain, r.seq) for r in conn.execute(select(AuditEventRow.event_id, AuditEventRow.chain, AuditEventRow.seq))}
    assert [stored[i] for i in ids] == [(2, 1), (2, 2), (2, 3), (3, 1)]
    report = first.verify()
    assert report.ok, report.problems
    assert report.events == 4


def test_many_processes_recording_at_once_on_few_read_chains_lose_nothing(engine):
    """Six trails in six threads, 40 reads each, on two read chains: appenders
    keep meeting, wait on each other's head and move on; every read is
    recorded exactly once, on unbroken chains."""
    if engine.dialect.name != "postgresql":
        pytest.skip("read chains are PostgreSQL's")
    trails = [AuditTrail(engine, chains=2) for _ in range(6)]
    recorded: list[str] = []
    lock = threading.Lock()

    def reads(n: int, trail: AuditTrail) -> None:
        for i in range(40):
            event_id = trail.record(_read_of(f"p-{n}-{i}"))
            with lock:
                recorded.append(event_id)

    threads = [threading.Thread(target=reads, args=(n, t)) for n, t in enumerate(trails)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert len(recorded) == len(set(recorded)) == 240
    chains = _chain_seqs(engine)
    assert sum(len(seqs) for seqs in chains.values()) == 240
    for chain, seqs in chains.items():
        assert seqs == list(range(1, len(seqs) + 1)), f"chain {chain} has gaps or repeats"
    assert sum(t._read_chains.moves for t in trails) > 0, "the trails never met: the test did not test contention"
    report = trails[0].verify()
    assert report.ok, report.problems


def test_a_process_whose_chain_head_was_changed_elsewhere_reads_it_again(engine):
    """A head that moved under the process (another process on the chain, or a
    database restored from a backup) is detected by the statement itself."""
    if engine.dialect.name != "postgresql":
        pytest.skip("read chains are PostgreSQL's")
    trail = AuditTrail(engine, chains=1)  # one read chain, 1: nowhere else to move
    trail.record(_read_of("p-1"))
    other = AuditTrail(engine, chains=1)
    other.record(_read_of("p-2"))
    other.record(_read_of("p-3"))
    trail.record(_read_of("p-4"))
    assert trail._read_chains.moves == 1 and trail._read_chains.chain == 1
    assert _chain_seqs(engine) == {1: [1, 2, 3, 4]}
    assert trail.verify().ok


def test_a_read_whose_record_fails_midway_leaves_nothing_and_frees_the_head(engine, monkeypatch):
    """A failure between the pipelined head lock and the insert (here, building the
    rows) rolls back: no event, the head free for the next record, and a pooled
    connection back in its normal mode."""
    trail = AuditTrail(engine, chains=1)
    trail.record(_read_of("p-warm"))  # the one chain head exists from here on
    with engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(AuditEventRow)).scalar_one()

    def broken(*_args):
        raise RuntimeError("rows could not be built")

    with monkeypatch.context() as patched:
        patched.setattr(trail, "_rows", broken)
        with pytest.raises(RuntimeError, match="rows could not be built"):
            trail.record(_read_of("p-lost"))

    # With one chain, a head still locked by the failed transaction would make this wait for ever.
    done = threading.Event()
    recorded: list[str] = []
    worker = threading.Thread(target=lambda: (recorded.append(trail.record(_read_of("p-next"))), done.set()), daemon=True)
    worker.start()
    assert done.wait(10), "the chain head stayed locked after the failed record"
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(AuditEventRow)).scalar_one() == before + 1
        assert "p-lost" not in {r.patient_id for r in conn.execute(select(AuditPatientRow.patient_id))}
        if engine.dialect.name == "postgresql":
            assert conn.connection.dbapi_connection.autocommit is False
    assert trail.verify().ok
