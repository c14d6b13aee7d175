"""Migration 0013 rebuilds a populated audit trail without losing or changing an event."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import MetaData, Table, insert, select, text, update

from tests.integration.retention.conftest import SITE, in_month, utcnow
from vaxhub.hub.audit.trail import GENESIS, AuditTrail, Interaction, audit_event, event_hash
from vaxhub.hub.retention.months import Month
from vaxhub.hub.storage.engine import upgrade


def _populate_at_0009(engine, moments: list[tuple[int, datetime, list[str]]]) -> None:
    """Events as the hub wrote them before 0013 (audit_patient without `recorded`)."""
    meta = MetaData()
    event = Table("audit_event", meta, autoload_with=engine)
    patient = Table("audit_patient", meta, autoload_with=engine)
    head = Table("audit_chain_head", meta, autoload_with=engine)
    heads: dict[int, tuple[int, str]] = {}
    with engine.begin() as conn:
        for chain, recorded, patients in moments:
            seq, prev = heads.get(chain, (0, GENESIS))
            seq += 1
            interaction = Interaction("read", "GET", "/fhir/Patient", principal=SITE)
            interaction.patients.update(patients)
            event_id = uuid.uuid4().hex
            content = audit_event(interaction, event_id, recorded)
            digest = event_hash(prev, chain, seq, event_id, recorded, "read", "0", "site-79001", content)
            conn.execute(insert(event).values(chain=chain, seq=seq, event_id=event_id, recorded=recorded, action="read", outcome="0",
                                              client_id="site-79001", content=content, prev_hash=prev, hash=digest))
            for p in patients:
                conn.execute(insert(patient).values(patient_id=p, chain=chain, seq=seq))
            heads[chain] = (seq, digest)
        for chain, (seq, digest) in heads.items():
            conn.execute(insert(head).values(chain=chain, last_seq=seq, last_hash=digest))


def _events(conn) -> list[tuple]:
    rows = conn.execute(text("SELECT chain, seq, event_id, recorded, action, outcome, client_id, content, prev_hash, hash FROM audit_event ORDER BY chain, seq"))
    return [tuple(r) for r in rows]


def test_migration_keeps_every_event_and_the_chains_still_verify(own_database):
    engine = own_database()
    upgrade(engine, "0009")
    now = Month.of(utcnow())
    moments = [
        (0, in_month(now.plus(-14), 3), ["p1"]),
        (1, in_month(now.plus(-14), 4), ["p1", "p2"]),
        (0, in_month(now.plus(-2), 5), []),
        (0, in_month(now, 1), ["p2"]),
        (1, in_month(now, 2), ["p3"]),
        (2, datetime(2091, 5, 1, 12), ["p1"]),  # a clock far off: no month partition of its own
    ]
    _populate_at_0009(engine, moments)
    with engine.connect() as conn:
        before = _events(conn)
        patients_before = sorted(tuple(r) for r in conn.execute(text("SELECT patient_id, chain, seq FROM audit_patient")))

    upgrade(engine, "0013")

    with engine.connect() as conn:
        after = _events(conn)
        patients_after = sorted(tuple(r) for r in conn.execute(text("SELECT patient_id, chain, seq FROM audit_patient")))
        patient_times = {(r.chain, r.seq): r.recorded for r in conn.execute(text("SELECT chain, seq, recorded FROM audit_patient"))}
    assert len(after) == len(moments)
    assert after == before
    assert patients_after == patients_before
    recorded = {(r[0], r[1]): r[3] for r in after}
    assert all(patient_times[key] == recorded[key] for key in patient_times)
    report = AuditTrail(engine).verify()
    assert report.ok, report.problems
    assert report.events == len(moments)


def test_migrated_postgres_trail_is_partitioned_by_month(own_database):
    engine = own_database()
    if engine.dialect.name != "postgresql":
        return _sqlite_keeps_plain_tables(engine)
    upgrade(engine, "0009")
    now = Month.of(utcnow())
    old = now.plus(-14)
    _populate_at_0009(engine, [(0, in_month(old), ["p1"]), (0, in_month(now), ["p1"]), (1, datetime(2091, 5, 1), ["p2"])])
    upgrade(engine, "0013")
    with engine.connect() as conn:
        kinds = dict(conn.execute(text("SELECT relname, relkind FROM pg_class WHERE relname IN ('audit_event', 'audit_patient')")).all())
        placed = dict(conn.execute(text("SELECT seq || '@' || chain, tableoid::regclass::text FROM audit_event")).all())
        patient_placed = dict(conn.execute(text("SELECT patient_id, string_agg(tableoid::regclass::text, ',') FROM audit_patient GROUP BY 1")).all())
        children = {r[0] for r in conn.execute(text("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit_event'::regclass"))}
        seq_type = conn.execute(text("SELECT data_type FROM information_schema.columns WHERE table_name = 'audit_event' AND column_name = 'seq'")).scalar_one()
    assert kinds == {"audit_event": "p", "audit_patient": "p"}
    # Every month that held events gets its partition, however far off its clock was.
    assert placed == {"1@0": f"audit_event_{old.suffix}", "2@0": f"audit_event_{now.suffix}", "1@1": "audit_event_y2091m05"}
    assert sorted(patient_placed["p1"].split(",")) == [f"audit_patient_{old.suffix}", f"audit_patient_{now.suffix}"]
    assert patient_placed["p2"] == "audit_patient_y2091m05"
    assert "audit_event_default" in children
    assert {f"audit_event_{now.plus(i).suffix}" for i in range(4)} <= children
    assert seq_type == "bigint"


def _sqlite_keeps_plain_tables(engine) -> None:
    upgrade(engine, "0013")
    with engine.connect() as conn:
        sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'audit_patient'")).scalar_one()
        names = {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'audit_%'"))}
    assert "recorded" in sql
    assert names == {"audit_event", "audit_patient", "audit_chain_head", "audit_checkpoint", "audit_archive"}


def test_tampering_is_still_detected_after_migration(own_database):
    engine = own_database()
    upgrade(engine, "0009")
    now = Month.of(utcnow())
    _populate_at_0009(engine, [(0, in_month(now.plus(-3)), ["p1"]), (0, in_month(now), ["p1"])])
    upgrade(engine, "0013")
    meta = MetaData()
    event = Table("audit_event", meta, autoload_with=engine)
    with engine.begin() as conn:
        conn.execute(update(event).where(event.c.seq == 1).values(outcome="8"))
    report = AuditTrail(engine).verify()
    assert not report.ok
    assert any("event 1" in p and "altered" in p for p in report.problems)


def test_patient_search_finds_events_from_before_and_after_the_migration(own_database):
    engine = own_database()
    upgrade(engine, "0009")
    now = Month.of(utcnow())
    _populate_at_0009(engine, [(0, in_month(now.plus(-5)), ["p1"]), (1, in_month(now.plus(-5)), ["p2"])])
    upgrade(engine, "0013")
    trail = AuditTrail(engine, chains=2)
    later = Interaction("read", "GET", "/fhir/Patient/p1", principal=SITE)
    later.patients.add("p1")
    trail.record(later)
    found, more = trail.search(patient="p1")
    assert not more
    assert len(found) == 2
    assert all({"reference": "Patient/p1"} in [e["what"] for e in event["entity"] if "what" in e] for event in found)
    assert found[0]["recorded"] > found[1]["recorded"]  # newest first
    with engine.connect() as conn:
        stored = conn.execute(select(text("count(*)")).select_from(text("audit_patient"))).scalar_one()
    assert stored == 3
    assert trail.search(patient="p2")[0][0]["entity"][-1]["what"] == {"reference": "Patient/p2"}


def test_downgrade_gives_back_the_plain_tables_with_every_event(own_database):
    from alembic import command

    from vaxhub.hub.storage.engine import WRITE_OPTION, alembic_config

    engine = own_database()
    upgrade(engine, "0009")
    now = Month.of(utcnow())
    _populate_at_0009(engine, [(0, in_month(now.plus(-3)), ["p1"]), (0, in_month(now), ["p1", "p2"]), (1, in_month(now), [])])
    with engine.connect() as conn:
        before = _events(conn)
    upgrade(engine, "0013")
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.connect().execution_options(**{WRITE_OPTION: True}) as conn, conn.begin():
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0009")
    with engine.connect() as conn:
        assert _events(conn) == before
        assert sorted(tuple(r) for r in conn.execute(text("SELECT patient_id, chain, seq FROM audit_patient"))) == [("p1", 0, 1), ("p1", 0, 2), ("p2", 0, 2)]
        if engine.dialect.name == "postgresql":
            assert conn.execute(text("SELECT relkind FROM pg_class WHERE relname = 'audit_event'")).scalar_one() == "r"
        assert conn.execute(text("SELECT count(*) FROM alembic_version WHERE version_num = '0009'")).scalar_one() == 1
