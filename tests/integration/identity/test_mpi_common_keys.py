"""A blocking key filed under more records than a candidate list holds (a
clinic's phone typed for every patient) is too common to block on: no link
batch and no online look-up reads its block, and the records that share it
are still linked by their other keys."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import insert

from tests.integration.identity.identity_builders import HUONG, of, person_of
from tests.integration.identity.test_mpi_worker import created
from vaxhub.hub.mpi import reads
from vaxhub.hub.mpi.candidates import CANDIDATE_LIMIT, fetch_candidates, filed_under
from vaxhub.hub.storage.mpi_tables import MpiBlockRow, MpiRecordRow
from vaxhub.identity.keys import blocking_keys, match_keys

CLINIC = "0243 826 9999"  # the reception desk's number, typed for every patient
CLINIC_KEY = "ph:02438269999"
PLANTED = CANDIDATE_LIMIT + 100


def _plant_clinic_patients(engine, count: int) -> None:
    """`count` linked records of different people, all with the clinic's phone."""
    records, blocks = [], []
    for i in range(count):
        patient = of(HUONG, name=f"Lê Văn Khách {i}", birth=f"19{50 + i % 50:02d}-0{1 + i % 9}-1{i % 9}", gender="male",
                     cccd=f"0790{i:08d}", phone=CLINIC, site="79009", number=f"walk-in-{i}")
        keys = match_keys(patient)
        record_id = f"clinic-{i:04d}"
        records.append({"record_id": record_id, "person_id": f"person-clinic-{i:04d}", "match_keys": keys.to_document(),
                        "state": "linked", "queued_at": datetime(2026, 1, 1), "attempts": 0, "locked": False})
        blocks += [{"key": key, "record_id": record_id} for key in blocking_keys(keys)]
    with engine.begin() as conn:
        conn.execute(insert(MpiRecordRow.__table__), records)
        conn.execute(insert(MpiBlockRow.__table__), blocks)


def test_filed_under_leaves_out_keys_held_by_more_than_the_limit(engine):
    with engine.begin() as conn:
        conn.execute(insert(MpiBlockRow.__table__), [{"key": "ph:0900000000", "record_id": f"r{i:03d}"} for i in range(12)]
                     + [{"key": "ph:0911111111", "record_id": f"s{i}"} for i in range(3)])
    with engine.connect() as conn:
        found = filed_under(conn, ["ph:0900000000", "ph:0911111111", "ph:0922222222"], most=10)
        exactly = filed_under(conn, ["ph:0900000000"], most=12)
    assert found.too_common == {"ph:0900000000"}
    assert sorted(found.pairs) == [("ph:0911111111", f"s{i}") for i in range(3)]
    assert exactly.too_common == frozenset() and len(exactly.pairs) == 12


@pytest.fixture
def batch_reads(monkeypatch):
    """Every BatchReads the link worker makes, kept to be looked at."""
    made = []
    original = reads.BatchReads.__init__

    def keep(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(reads.BatchReads, "__init__", keep)
    return made


def test_a_record_on_a_clinic_phone_links_by_its_other_keys_without_reading_the_clinic_block(
        hub, site, engine, mpi, verify_all, link_all, batch_reads):
    huong = created(site("79001").post("/fhir/Patient", json=of(HUONG, phone="0912 345 678", site="79001")))
    verify_all()
    link_all()
    _plant_clinic_patients(engine, PLANTED)
    # Hương again, without her CCCD, at the clinic that types its own number for everyone.
    again = created(site("79002").post("/fhir/Patient", json=of(HUONG, cccd=None, phone=CLINIC, site="79002", number="h-2")))
    verify_all()
    batch_reads.clear()
    link_all()

    assert person_of(engine, again) == person_of(engine, huong) is not None
    assert batch_reads, "the link worker read no batch"
    for batch in batch_reads:
        assert CLINIC_KEY in batch.too_common
        assert CLINIC_KEY not in batch.filed
        assert not any(record_id.startswith("clinic-") for record_id in batch.rows), "the clinic's block was read"
    with engine.connect() as conn:
        online = fetch_candidates(conn, [CLINIC_KEY, *blocking_keys(match_keys(of(HUONG, cccd=None, phone=CLINIC)))], besides=again)
    assert {c.record_id for c in online} == {huong}
