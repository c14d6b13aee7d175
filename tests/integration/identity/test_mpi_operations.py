"""Operators link, unlink, merge and un-merge with a reason; every change is in
the history with who and why, and undoing it restores what was there."""

from __future__ import annotations

import pytest

from tests.integration.identity.identity_builders import HUONG, MAI, dose, of, person_of


def created(response) -> str:
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.fixture
def linked_people(site, link_all, engine):
    """Thu Hương's two records linked into one person; her mother on her own."""
    hanoi, hcm = site("79001"), site("79002")
    a = created(hanoi.post("/fhir/Patient", json=of(HUONG, phone="0912345678", number="a")))
    b = created(hcm.post("/fhir/Patient", json=of(HUONG, name="Nguyen Thi Thu Huong", cccd=None, phone="0912345678", site="79002", number="b")))
    m = created(hcm.post("/fhir/Patient", json=of(MAI, site="79002", number="m")))
    for s, p, code in ((hanoi, a, "79001"), (hcm, b, "79002"), (hcm, m, "79002")):
        created(s.post("/fhir/Immunization", json=dose(p, f"{code}-{p}", site=code)))
    link_all()
    assert person_of(engine, a) == person_of(engine, b) != person_of(engine, m)
    return {"a": a, "b": b, "m": m, "person": person_of(engine, a), "mother": person_of(engine, m)}


def members(ops, person: str) -> set[str]:
    view = ops.get(f"/ops/mpi/persons/{person}")
    assert view.status_code == 200, view.text
    return {r["id"] for r in view.json()["records"]}


def golden(client, person: str) -> dict:
    found = client.get(f"/fhir/Patient/{person}").json()
    return {k: found.get(k) for k in ("name", "birthDate", "gender", "identifier", "link", "active")}


def test_unlink_then_link_restores_the_person_exactly(ops, client, linked_people, engine):
    p = linked_people
    before = golden(client, p["person"])
    unlinked = ops.post("/ops/mpi/unlink", json={"record": f"Patient/{p['b']}", "reason": "phone call: two different women"})
    assert unlinked.status_code == 200, unlinked.text
    alone = unlinked.json()["person"]
    assert members(ops, p["person"]) == {p["a"]} and members(ops, alone) == {p["b"]}
    assert golden(client, p["person"])["link"] == [{"other": {"reference": f"Patient/{p['a']}"}, "type": "seealso"}]

    relinked = ops.post("/ops/mpi/link", json={"record": p["b"], "person": p["person"], "reason": "second call: the same woman after all"})
    assert relinked.status_code == 200, relinked.text
    assert members(ops, p["person"]) == {p["a"], p["b"]}
    assert golden(client, p["person"]) == before
    assert client.get(f"/fhir/Patient/{alone}").status_code == 410  # the emptied person is gone, its history kept
    assert len(client.get("/fhir/Immunization", params={"patient": f"Patient/{p['person']}"}).json()["entry"]) == 2

    history = ops.get(f"/ops/mpi/persons/{p['person']}/history").json()["events"]
    manual = [(e["action"], e["actor"], e["reason"]) for e in history if e["actor"] == "moh-mpi-desk"]
    assert manual == [("unlink", "moh-mpi-desk", "phone call: two different women"),
                      ("link", "moh-mpi-desk", "second call: the same woman after all")]
    unlink_event = next(e for e in history if e["action"] == "unlink")
    assert unlink_event["before"]["person"] == p["person"] and unlink_event["after"]["person"] == alone


def test_an_unlinked_record_is_not_put_back_by_automatic_relinking(ops, hub, linked_people, link_all, engine, site):
    p = linked_people
    ops.post("/ops/mpi/unlink", json={"record": p["b"], "reason": "not her"})
    hcm = site("79002")
    record = hcm.get(f"/fhir/Patient/{p['b']}").json()
    assert hcm.put(f"/fhir/Patient/{p['b']}", json={**record, "birthDate": "1990-05-04", "gender": "female",
                                                      "name": [{"use": "official", "text": "Nguyen Thi Thu  Huong"}]}).status_code == 200
    link_all()
    assert person_of(engine, p["b"]) != p["person"]


def test_merge_then_unmerge_restores_both_persons(ops, client, linked_people):
    p = linked_people
    her, mother = golden(client, p["person"]), golden(client, p["mother"])
    merged = ops.post("/ops/mpi/merge", json={"from": p["mother"], "into": p["person"], "reason": "test of a wrong merge"})
    assert merged.status_code == 200, merged.text
    assert members(ops, p["person"]) == {p["a"], p["b"], p["m"]}
    gone = client.get(f"/fhir/Patient/{p['mother']}").json()
    assert gone["active"] is False and gone["link"] == [{"other": {"reference": f"Patient/{p['person']}"}, "type": "replaced-by"}]
    assert len(client.get("/fhir/Immunization", params={"patient": f"Patient/{p['person']}"}).json()["entry"]) == 3
    assert ops.post("/ops/mpi/link", json={"record": p["a"], "person": p["mother"], "reason": "x"}).status_code == 409

    restored = ops.post("/ops/mpi/unmerge", json={"person": p["mother"], "reason": "the merge was wrong"})
    assert restored.status_code == 200, restored.text
    assert members(ops, p["person"]) == {p["a"], p["b"]} and members(ops, p["mother"]) == {p["m"]}
    assert golden(client, p["person"]) == her and golden(client, p["mother"]) == mother
    assert len(client.get("/fhir/Immunization", params={"patient": f"Patient/{p['mother']}"}).json()["entry"]) == 1

    events = ops.get(f"/ops/mpi/persons/{p['mother']}/history").json()["events"]
    assert [(e["action"], e["reason"]) for e in events if e["actor"] == "moh-mpi-desk"] == [
        ("merge", "test of a wrong merge"), ("unmerge", "the merge was wrong")]
    merge_event = next(e for e in events if e["action"] == "merge")
    assert [r["record"] for r in merge_event["before"]["records"]] == [p["m"]]
    assert ops.post("/ops/mpi/unmerge", json={"person": p["mother"], "reason": "again"}).status_code == 409


def test_changes_need_a_reason_and_known_records(ops, linked_people):
    p = linked_people
    for body in ({"record": p["b"]}, {"record": p["b"], "reason": ""}, {"record": p["b"], "reason": "   "}):
        r = ops.post("/ops/mpi/unlink", json=body)
        assert r.status_code in (400, 422) and r.json()["resourceType"] == "OperationOutcome", (body, r.text)
    r = ops.post("/ops/mpi/unlink", json={"record": "no-such-record", "reason": "x"})
    assert r.status_code == 404 and r.json()["resourceType"] == "OperationOutcome"
    assert ops.post("/ops/mpi/unlink", json={"record": p["m"], "reason": "alone"}).status_code == 409
    assert ops.post("/ops/mpi/merge", json={"from": p["person"], "into": p["person"], "reason": "x"}).status_code in (400, 422)
    assert ops.post("/ops/mpi/merge", json={"from": "nobody", "into": p["person"], "reason": "x"}).status_code == 404
    assert ops.post("/ops/mpi/link", content=b"not json", headers={"content-type": "application/json"}).status_code == 400
    assert members(ops, p["person"]) == {p["a"], p["b"]}  # nothing half done


def test_operator_endpoints_refuse_callers_without_the_mpi_role(hub, ops, linked_people):
    _app, raw, login = hub
    p = linked_people
    system = login("a-hospital", "system/*.cruds")
    other_operator = login("auditor-desk", "system/Patient.rs", kind="operator", roles="auditor")
    site_operator = login("site-mpi-desk", "system/Patient.rs", kind="operator", roles="mpi", site="79001")
    calls = [("get", "/ops/mpi/stats", None), ("get", "/ops/mpi/reviews", None), ("get", f"/ops/mpi/persons/{p['person']}", None),
             ("get", f"/ops/mpi/persons/{p['person']}/history", None), ("get", f"/ops/mpi/records/{p['a']}", None),
             ("post", "/ops/mpi/unlink", {"record": p["b"], "reason": "x"}),
             ("post", "/ops/mpi/link", {"record": p["b"], "person": p["mother"], "reason": "x"}),
             ("post", "/ops/mpi/merge", {"from": p["mother"], "into": p["person"], "reason": "x"}),
             ("post", "/ops/mpi/unmerge", {"person": p["mother"], "reason": "x"}),
             ("post", "/ops/mpi/reviews/1", {"decision": "accept", "reason": "x"})]
    for headers in ({}, system, other_operator, site_operator):
        for method, path, body in calls:
            r = raw.request(method, path, json=body, headers=headers)
            assert r.status_code in (401, 403), (headers.get("authorization", "")[:20], path, r.status_code)
            assert r.json()["resourceType"] == "OperationOutcome"
    assert members(ops, p["person"]) == {p["a"], p["b"]}
    assert ops.get("/ops/mpi/stats").json()["persons"]["active"] == 2


def test_the_record_view_shows_how_it_was_linked(ops, linked_people):
    p = linked_people
    views = [ops.get(f"/ops/mpi/records/{p[r]}").json() for r in ("a", "b")]
    first, second = sorted(views, key=lambda v: v["method"] != "new")
    assert (first["method"], second["method"], second["grade"]) == ("new", "score", "probable")
    assert first["person"] == second["person"] == p["person"]
    assert any(r.startswith("birth_date: exact") for r in second["reasons"])
    assert [e["action"] for e in second["events"]] == ["auto-link"] and second["events"][0]["actor"] == "mpi-linker"
    assert ops.get("/ops/mpi/records/no-such").status_code == 404
