"""VXU^V04 messages stored together in one unit of work, on SQLite and PostgreSQL:
each keeps its own sender's rights, ACK and AuditEvent, and one that fails in
the group is stored alone as if it had come alone."""

import threading

import pytest
from prometheus_client import REGISTRY
from psycopg import pq
from sqlalchemy import event, func, select

from tests.hl7v2_messages import new_dose, vxu
from vaxhub.hub.audit.listener import AuditListener
from vaxhub.hub.audit.trail import AuditTrail, Interaction
from vaxhub.hub.ingest.vxu import PreparedVxu, VxuReceiver
from vaxhub.hub.ingest.vxu_groups import ALONE, Resent, StoredTogether, VxuGroups
from vaxhub.hub.mpi.enqueue import LinkEnqueuer
from vaxhub.hub.observability.request_context import bound_request_id
from vaxhub.hub.security.policy import SiteWriteGuard
from vaxhub.hub.security.principal import SYSTEM, Principal
from vaxhub.hub.security.scopes import parse_scopes
from vaxhub.hub.storage.mpi_tables import MpiRecordRow
from vaxhub.hub.storage.outbox_tables import VerificationJobRow
from vaxhub.hub.storage.engine import make_engine
from vaxhub.hub.storage.store import FhirStore
from vaxhub.hub.storage.tables import ResourceRow
from vaxhub.hub.verification.enqueue import VerificationEnqueuer

ER7 = {"content-type": "x-application/hl7-v2+er7"}


def _site(code: str) -> SiteWriteGuard:
    return SiteWriteGuard(Principal(SYSTEM, f"site-{code}", client_id=f"site-{code}", site_code=code, scopes=tuple(parse_scopes("system/*.cru"))))


def _msa(ack: str) -> str:
    return ack.split("\r")[1].split("|")[1]


@pytest.fixture
def audited(engine):
    trail = AuditTrail(engine)
    return FhirStore(engine, listeners=[AuditListener(trail), VerificationEnqueuer(), LinkEnqueuer()]), trail


def _receiver(store: FhirStore, groups: VxuGroups, site: str, request_id: str) -> VxuReceiver:
    return VxuReceiver(store, base="urn:test", guard=_site(site), interaction=Interaction("transaction", "POST", "/hl7v2", request_id=request_id),
                       groups=groups)


def _metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def _stored(engine, rtype: str) -> list[dict]:
    with engine.connect() as conn:
        return [c for (c,) in conn.execute(select(ResourceRow.content).where(ResourceRow.res_type == rtype))]


def test_a_group_keeps_each_messages_rights_ack_and_audit_and_stores_a_failing_one_alone(audited, engine):
    store, trail = audited
    groups = VxuGroups(store)
    # Stored alone first: the number the next group's message will need the widened match for, and a message to resend.
    earlier = VxuReceiver(store, base="urn:test", guard=_site("79001")).receive(vxu("E-1", cccd=None, mrn="BN-W", orders=[new_dose("IZ-W1")]))
    resend_text = vxu("E-2", cccd="079090000002", mrn="BN-R", orders=[new_dose("IZ-R1")])
    resent_first = VxuReceiver(store, base="urn:test", guard=_site("79001")).receive(resend_text)
    assert earlier.code == resent_first.code == "AA"

    texts = {
        "first": (vxu("G-1", cccd="079090000001", mrn="BN-A", orders=[new_dose("IZ-A1")]), "79001"),
        # the same person's next dose in the same group: matched to the Patient the group is creating
        "second": (vxu("G-2", cccd="079090000001", mrn="BN-A", orders=[new_dose("IZ-A2", date="20210901")]), "79001"),
        # another site's client may not write this site's records
        "foreign": (vxu("G-3", cccd="079090000003", mrn="BN-F", orders=[new_dose("IZ-F1")]), "01001"),
        # the CCCD is new but the site number is held: fails in the group, stored alone by the widened match
        "widened": (vxu("G-4", cccd="079090000004", mrn="BN-W", orders=[new_dose("IZ-W2", date="20210901")]), "79001"),
        "resent": (resend_text, "79001"),
        "copy": (vxu("G-1", cccd="079090000001", mrn="BN-A", orders=[new_dose("IZ-A1")]), "79001"),
    }
    receivers = {name: _receiver(store, groups, site, f"req-{name}") for name, (_text, site) in texts.items()}
    prepared = {}
    for name, (text, _site_code) in texts.items():
        with bound_request_id(f"req-{name}"):  # as each request's middleware binds it
            prepared[name] = receivers[name].prepare(text)
    assert all(isinstance(p, PreparedVxu) and p.queued is not None for p in prepared.values())
    units, set_aside = _metric("vaxhub_hl7_messages_per_unit_count"), _metric("vaxhub_hl7_messages_set_aside_total")
    answers = dict(zip(prepared, groups.store_all([p.queued for p in prepared.values()])))
    assert _metric("vaxhub_hl7_messages_per_unit_count") - units == 1 and _metric("vaxhub_hl7_messages_set_aside_total") - set_aside == 2

    assert isinstance(answers["first"], StoredTogether) and isinstance(answers["second"], StoredTogether)
    assert answers["foreign"] is ALONE and answers["widened"] is ALONE and answers["copy"] is ALONE
    assert isinstance(answers["resent"], Resent) and answers["resent"].ack == resent_first.ack
    outcomes = {name: receivers[name].finish(prepared[name], answers[name]) for name in texts}
    assert {name: o.code for name, o in outcomes.items()} == {
        "first": "AA", "second": "AA", "foreign": "AR", "widened": "AA", "resent": "AA", "copy": "AA"}
    assert outcomes["copy"].resent and outcomes["copy"].ack == outcomes["first"].ack
    assert "Not allowed" in outcomes["foreign"].ack

    patients = _stored(engine, "Patient")
    immunizations = {i["identifier"][0]["value"]: i for i in _stored(engine, "Immunization")}
    assert len(patients) == 3  # A, W (one Patient for both of W's numbers) and R; F was refused
    assert set(immunizations) == {"IZ-W1", "IZ-R1", "IZ-A1", "IZ-A2", "IZ-W2"}
    assert immunizations["IZ-A1"]["patient"] == immunizations["IZ-A2"]["patient"]
    assert immunizations["IZ-W1"]["patient"] == immunizations["IZ-W2"]["patient"]
    # One unit stored the group: its records share the unit's clock; the one stored alone does not.
    assert immunizations["IZ-A1"]["meta"]["lastUpdated"] == immunizations["IZ-A2"]["meta"]["lastUpdated"]
    assert immunizations["IZ-W2"]["meta"]["lastUpdated"] != immunizations["IZ-A1"]["meta"]["lastUpdated"]

    # Each stored message has its own AuditEvent, naming only what it touched; the others none from the group.
    first, second = receivers["first"].interaction, receivers["second"].interaction
    assert first.recorded and second.recorded and receivers["widened"].interaction.recorded
    assert not receivers["foreign"].interaction.recorded and not receivers["resent"].interaction.recorded
    patient_id = immunizations["IZ-A1"]["patient"]["reference"].split("/")[1]
    assert first.patients == second.patients == {patient_id}
    assert sorted(t for t, _i, _v in first.entities) == ["Immunization", "Patient"]
    assert {i for t, i, _v in second.entities if t == "Immunization"} == {immunizations["IZ-A2"]["id"]}
    assert trail.verify().ok
    # The new person's verification job and link carry the request id of the message that created them,
    # not the one of the request whose thread happened to store the group.
    with engine.connect() as conn:
        job_request = conn.execute(select(VerificationJobRow.request_id).where(VerificationJobRow.patient_id == patient_id)).scalar_one()
        link_request = conn.execute(select(MpiRecordRow.request_id).where(MpiRecordRow.record_id == patient_id)).scalar_one()
    assert job_request == link_request == "req-first"


def test_messages_posted_at_once_are_all_acknowledged_and_stored_once(client, engine):
    texts = [vxu(f"P-{i}", cccd=f"07909100{i:04d}", mrn=f"BN-P{i}", orders=[new_dose(f"IZ-P{i}")]) for i in range(16)]
    texts += texts[:4]  # copies of four of them, racing their originals
    acks: list[str | None] = [None] * len(texts)
    start = threading.Barrier(len(texts))

    def send(i: int) -> None:
        start.wait()
        acks[i] = client.post("/hl7v2", content=texts[i].encode(), headers=ER7).text

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(a is not None and _msa(a) == "AA" for a in acks), acks
    assert acks[16:] == acks[:4]  # a copy gets the ACK its original was given
    with engine.connect() as conn:
        counts = dict(conn.execute(select(ResourceRow.res_type, func.count()).group_by(ResourceRow.res_type)).all())
    assert counts == {"Patient": 16, "Immunization": 16}
    # Every message, stored in a group, alone, or answered as a copy, has its one AuditEvent.
    events = client.get("/fhir/AuditEvent", params={"subtype": "transaction", "_count": 100}).json()
    assert len(events.get("entry", [])) == len(texts)


def _group_statements(engine, tmp_path, texts: list[str]) -> tuple[int, list]:
    """Store `texts` as one group through a store on one connection; the
    statements the group sent and its answers. On PostgreSQL they are counted
    in libpq's protocol trace (one Bind or Query message each), so statements
    sent on the driver's cursor directly count too."""
    counted = make_engine(engine.url.render_as_string(hide_password=False), pool_size=1)
    try:
        # One audit chain: every group appends to the head the first one made.
        store = FhirStore(counted, listeners=[AuditListener(AuditTrail(counted, chains=1)), VerificationEnqueuer(), LinkEnqueuer()])
        groups = VxuGroups(store)
        prepared = [_receiver(store, groups, "79001", f"req-{i}").prepare(text) for i, text in enumerate(texts)]
        if counted.dialect.name != "postgresql":
            sent: list[str] = []
            listener = lambda _conn, _cursor, statement, *_args: sent.append(statement)  # noqa: E731
            event.listen(counted, "before_cursor_execute", listener)
            try:
                answers = groups.store_all([p.queued for p in prepared])
            finally:
                event.remove(counted, "before_cursor_execute", listener)
            return len(sent), answers
        trace = tmp_path / f"protocol-{len(texts)}.txt"
        with counted.connect() as conn:
            pgconn = conn.connection.dbapi_connection.pgconn
        with trace.open("w") as handle:
            pgconn.trace(handle.fileno())
            pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
            try:
                answers = groups.store_all([p.queued for p in prepared])
            finally:
                pgconn.untrace()
        messages = [line.split("\t")[2] for line in trace.read_text().splitlines() if line.startswith("F\t")]
        return sum(1 for m in messages if m in ("Bind", "Query")), answers
    finally:
        counted.dispose()


def test_a_group_reads_and_writes_its_messages_together_whatever_their_number(audited, engine, tmp_path):
    """A group's statements do not grow with its messages: their identifiers
    and the stored people they match are read once, and their rows written in
    one flush, while each message is still checked on its own."""
    store, trail = audited
    known = [f"0790920{i:05d}" for i in range(12)]
    for i, cccd in enumerate(known):  # first doses, stored alone: the groups' people are then known
        first = VxuReceiver(store, base="urn:test", guard=_site("79001")).receive(vxu(f"K-{i}", cccd=cccd, mrn=f"BN-K{i}", orders=[new_dose(f"IZ-K{i}")]))
        assert first.code == "AA"

    def messages(tag: str, people: list[str], new: int, block: int) -> list[str]:
        second = [vxu(f"{tag}-{i}", cccd=cccd, mrn=f"BN-K{known.index(cccd)}", orders=[new_dose(f"IZ-{tag}{i}", date="20211001")])
                  for i, cccd in enumerate(people)]
        fresh = [vxu(f"{tag}-N{i}", cccd=f"07909{block}{i:06d}", mrn=f"BN-{tag}N{i}", orders=[new_dose(f"IZ-{tag}N{i}")]) for i in range(new)]
        return second + fresh

    # A first group makes the audit chain's head, as the first unit of a new database does.
    _group_statements(engine, tmp_path, messages("W", [], 1, block=5))
    small, small_answers = _group_statements(engine, tmp_path, messages("S", known[:2], 1, block=3))
    large, large_answers = _group_statements(engine, tmp_path, messages("L", known[2:12], 5, block=4))
    assert all(isinstance(a, StoredTogether) for a in small_answers + large_answers)
    assert large == small, f"a group of 15 sent {large} statements, a group of 3 {small}"

    immunizations = _stored(engine, "Immunization")
    patients = {p["id"]: p for p in _stored(engine, "Patient")}
    assert len(immunizations) == 12 + 1 + 3 + 15 and len(patients) == 12 + 1 + 1 + 5
    by_order = {i["identifier"][0]["value"]: i for i in immunizations}
    for i in range(12):  # each known person's second dose went to the Patient stored with the first
        tag = "S" if i < 2 else "L"
        assert by_order[f"IZ-{tag}{i if i < 2 else i - 2}"]["patient"] == by_order[f"IZ-K{i}"]["patient"]
    assert trail.verify().ok


def test_a_message_of_a_group_referring_to_nothing_stored_is_set_aside(audited, engine):
    """References are checked message by message even though the rows go out
    together: the group is stored without the message, which is refused alone."""
    store, _trail = audited
    groups = VxuGroups(store)
    texts = [vxu(f"R-{i}", cccd=f"07909400{i:04d}", mrn=f"BN-R{i}", orders=[new_dose(f"IZ-R{i}")]) for i in range(3)]
    prepared = [_receiver(store, groups, "79001", f"req-{i}").prepare(text) for i, text in enumerate(texts)]
    broken = prepared[1].queued
    immunization = next(e for e in broken.entries if e.rtype == "Immunization")
    immunization.resource["location"] = {"reference": "Location/nowhere"}
    answers = groups.store_all([p.queued for p in prepared])
    assert isinstance(answers[0], StoredTogether) and isinstance(answers[2], StoredTogether) and answers[1] is ALONE
    assert {i["identifier"][0]["value"] for i in _stored(engine, "Immunization")} == {"IZ-R0", "IZ-R2"}
