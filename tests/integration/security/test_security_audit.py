"""Every read and write leaves exactly one AuditEvent; the trail shows tampering."""

from __future__ import annotations

import pytest
from fhir.resources.R4B.auditevent import AuditEvent
from sqlalchemy import func, select, text, update

from tests.builders import immunization, patient, person_with_doses, transaction
from vaxhub.hub.audit.tables import AuditEventRow


def _events(app) -> int:
    # Logins are security events of their own (tests/integration/observability); these count data interactions.
    with app.state.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(AuditEventRow).where(AuditEventRow.action != "login")).scalar_one()


def test_every_interaction_leaves_exactly_one_audit_event(hub, client):
    app, raw, login = hub
    calls = []
    created = client.post("/fhir/Patient", json=patient("079090012345"))
    calls.append(("create", created))
    pid = created.json()["id"]
    calls += [
        ("create-conditional", client.post("/fhir/Patient", json=patient("079090012345"), headers={"If-None-Exist": "identifier=https://vaxhub.vn/fhir/sid/cccd|079090012345"})),
        ("read", client.get(f"/fhir/Patient/{pid}")),
        ("vread", client.get(f"/fhir/Patient/{pid}/_history/1")),
        ("search", client.get("/fhir/Patient", params={"name": "nguyen"})),
        ("history", client.get(f"/fhir/Patient/{pid}/_history")),
        ("type-history", client.get("/fhir/Patient/_history")),
        ("update", client.put(f"/fhir/Patient/{pid}", json={**created.json(), "gender": "female"})),
        ("create-imm", client.post("/fhir/Immunization", json=immunization(f"Patient/{pid}"))),
        ("everything", client.get(f"/fhir/Patient/{pid}/$everything")),
        ("transaction", client.post("/fhir", json=transaction(*person_with_doses("001185000001", 2)))),
        ("invalid", client.post("/fhir/Patient", json={**patient("079090000002"), "birthDate": "bad"})),
        ("missing", client.get("/fhir/Patient/nope")),
        ("unauthenticated", raw.get("/fhir/Patient")),
        ("delete-refused", client.delete(f"/fhir/Patient/{pid}")),
        ("audit-search", client.get("/fhir/AuditEvent", params={"patient": pid})),
    ]
    # Counting afterwards event by event: replay each call and compare the count before and after.
    before = _events(app)
    assert before == len(calls)
    for name, call in [("read", lambda: client.get(f"/fhir/Patient/{pid}")), ("search", lambda: client.get("/fhir/Immunization")),
                       ("write", lambda: client.post("/fhir/Organization", json={"resourceType": "Organization", "name": "X"})),
                       ("refused", lambda: raw.get(f"/fhir/Patient/{pid}"))]:
        start = _events(app)
        call()
        assert _events(app) == start + 1, name
    assert app.state.audit.verify().ok


def test_audit_events_are_valid_fhir_and_say_who_what_when_where(hub, client):
    app, raw, _login = hub
    pid = client.post("/fhir/Patient", json=patient("079090012345")).json()["id"]
    client.get(f"/fhir/Patient/{pid}")
    bundle = client.get("/fhir/AuditEvent", params={"patient": pid}).json()
    events = [e["resource"] for e in bundle["entry"]]
    assert {e["subtype"][0]["code"] for e in events} >= {"create", "read"}
    for event in events:
        AuditEvent.model_validate(event)
        agent = event["agent"][0]
        assert agent["who"]["identifier"]["value"] == "national-admin"
        assert agent["network"]["address"]
        assert event["recorded"] and event["outcome"] == "0"
        assert any(e.get("what", {}).get("reference", "").startswith(f"Patient/{pid}") for e in event["entity"])


def test_refused_request_is_audited_as_a_failure(hub, client):
    app, raw, login = hub
    verifier = login("border-checker", "system/Patient.rs", kind="verifier")
    raw.get("/fhir/Patient", headers=verifier)
    events = client.get("/fhir/AuditEvent", params={"agent": "border-checker"}).json()["entry"]
    assert events[0]["resource"]["outcome"] == "8"


def test_audit_search_by_client_and_time_and_only_for_auditors(hub, client):
    app, raw, login = hub
    site = login("site-79001", "system/Patient.cruds system/Immunization.cruds", site="79001")
    raw.post("/fhir/Patient", json=patient("079090012345"), headers=site)
    found = client.get("/fhir/AuditEvent", params={"agent": "site-79001", "date": "ge2020-01-01"}).json()
    assert [e["resource"]["subtype"][0]["code"] for e in found["entry"]] == ["create", "110122"]  # the write, then its login
    assert client.get("/fhir/AuditEvent", params={"date": "lt2020-01-01"}).json().get("entry") is None
    assert raw.get("/fhir/AuditEvent", headers=site).status_code == 403


@pytest.mark.parametrize("tamper", ["edit", "delete-middle", "delete-last"])
def test_tampering_with_the_trail_is_detected(hub, client, engine, tamper):
    app, _raw, _login = hub
    for n in range(12):
        client.post("/fhir/Patient", json=patient(f"0790900000{n:02d}"))
    assert app.state.audit.verify().ok
    with engine.begin() as conn:
        rows = conn.execute(select(AuditEventRow.chain, AuditEventRow.seq).order_by(AuditEventRow.chain, AuditEventRow.seq)).all()
        by_chain: dict[int, list[int]] = {}
        for chain, seq in rows:
            by_chain.setdefault(chain, []).append(seq)
        chain, seqs = max(by_chain.items(), key=lambda kv: len(kv[1]))
        if tamper == "edit":
            content = conn.execute(select(AuditEventRow.content).where(AuditEventRow.chain == chain, AuditEventRow.seq == seqs[0])).scalar_one()
            content["agent"][0]["name"] = "system:someone-else"
            conn.execute(update(AuditEventRow).where(AuditEventRow.chain == chain, AuditEventRow.seq == seqs[0]).values(content=content))
        else:
            victim = seqs[len(seqs) // 2] if tamper == "delete-middle" else seqs[-1]
            conn.execute(text("DELETE FROM audit_event WHERE chain = :c AND seq = :s"), {"c": chain, "s": victim})
    report = app.state.audit.verify()
    assert not report.ok
    assert any(f"chain {chain}" in p for p in report.problems)


def test_audit_verify_command_exits_non_zero_on_tampering(hub, client, engine, monkeypatch):
    from typer.testing import CliRunner

    from vaxhub.hub.cli import app as cli

    client.post("/fhir/Patient", json=patient("079090012345"))
    monkeypatch.setenv("VAXHUB_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    runner = CliRunner()
    assert runner.invoke(cli, ["audit", "verify"]).exit_code == 0
    with engine.begin() as conn:
        conn.execute(update(AuditEventRow).values(outcome="0", action="read"))
    result = runner.invoke(cli, ["audit", "verify"])
    assert result.exit_code == 1


def test_a_batch_leaves_one_audit_event_per_entry(hub, client):
    app, _raw, _login = hub
    start = _events(app)
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": patient("079090000101"), "request": {"method": "POST", "url": "Patient"}},
        {"resource": {**patient("079090000102"), "birthDate": "nope"}, "request": {"method": "POST", "url": "Patient"}},
        {"request": {"method": "GET", "url": "Patient?gender=male"}},
    ]}
    r = client.post("/fhir", json=batch)
    assert r.status_code == 200
    assert _events(app) == start + 3
    recent = app.state.audit.search(count=3)[0]
    assert sorted(e["outcome"] for e in recent) == ["0", "0", "4"]  # the invalid entry is a failure
    assert app.state.audit.verify().ok


def test_a_writer_takes_a_free_chain_instead_of_waiting_for_a_busy_one(engine):
    # Every write's transaction holds a chain head from its AuditEvent to its
    # commit; with seven of eight heads held, an append must not wait.
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite has one writer at a time")
    from vaxhub.hub.audit.tables import AuditChainHeadRow
    from vaxhub.hub.audit.trail import AuditTrail, Interaction

    trail = AuditTrail(engine, chains=8)
    for chain in range(8):  # create every head
        with engine.begin() as conn:
            trail._locked_head(conn, chain)
    holders = [engine.connect() for _ in range(7)]
    try:
        for chain, conn in enumerate(holders):
            conn.begin()
            conn.execute(select(AuditChainHeadRow.chain).where(AuditChainHeadRow.chain == chain).with_for_update())
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '2s'"))  # waiting would fail the test
            trail.append(conn, Interaction("read", "GET", "/fhir/Patient/x"))
        with engine.connect() as conn:
            chains = [c for (c,) in conn.execute(select(AuditEventRow.chain))]
        assert chains == [7]
    finally:
        for conn in holders:
            conn.rollback()
            conn.close()
    assert trail.verify().ok


def test_a_read_is_recorded_on_its_own_thread_and_a_failed_one_by_the_middleware(hub, client, monkeypatch):
    # A successful read records its AuditEvent where the endpoint ran; only a
    # request that ends in an error takes the extra trip to the thread pool.
    from vaxhub.hub.api import access

    app, _raw, _login = hub
    pid = client.post("/fhir/Patient", json=patient("079090012345")).json()["id"]
    recordings = []
    real = access.run_in_threadpool

    async def watched(func, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        if func == app.state.audit.record:
            recordings.append(args[0].path)
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(access, "run_in_threadpool", watched)
    before = _events(app)
    reads = [client.get(f"/fhir/Patient/{pid}"), client.get(f"/fhir/Patient/{pid}/$everything"),
             client.get("/fhir/Immunization", params={"patient": pid}), client.get(f"/fhir/Patient/{pid}/_history/1")]
    assert [r.status_code for r in reads] == [200] * 4
    assert recordings == [] and _events(app) == before + 4
    assert client.get("/fhir/Patient/nope").status_code == 404
    assert recordings == ["/fhir/Patient/nope"] and _events(app) == before + 5
    with app.state.engine.connect() as conn:
        outcomes = conn.execute(select(AuditEventRow.outcome).order_by(AuditEventRow.recorded.desc(), AuditEventRow.seq.desc()).limit(5)).scalars().all()
    assert outcomes == ["4", "0", "0", "0", "0"]
