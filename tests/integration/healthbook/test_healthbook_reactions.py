"""Citizens report reactions to their own doses; the recording site sees them; the dashboard counts them."""

from __future__ import annotations

from datetime import date

import pytest

from tests.integration.healthbook.conftest import COMIRNATY, citizen_login, dose, person
from vaxhub.hub.healthbook.citizen_reports import SERIOUSNESS_SYSTEM
from vaxhub.hub.healthbook.reactions import reaction_counts

TODAY = date(2021, 9, 1)


def reaction(patient_id: str, dose_id: str, seriousness: str = "non-serious", when: str = "2021-08-20") -> dict:
    return {
        "resourceType": "AdverseEvent",
        "actuality": "actual",
        "subject": {"reference": f"Patient/{patient_id}"},
        "date": when,
        "event": {"text": "Sốt 38,5 độ, đau chỗ tiêm"},
        "seriousness": {"coding": [{"system": SERIOUSNESS_SYSTEM, "code": seriousness}]},
        "suspectEntity": [{"instance": {"reference": f"Immunization/{dose_id}"}}],
    }


@pytest.fixture
def people(sites):
    hcm, hn = sites["79001"], sites["01001"]
    an = person(hcm, "079090012345", "0912345678", state="Hồ Chí Minh")
    binh = person(hn, "001185067890", "0987654321", state="Hà Nội", family="Lê", given=("Thị", "Bình"))
    return {
        "an": an, "binh": binh,
        "an_dose": dose(hcm, "79001", an, "A1", cvx=COMIRNATY, days_ago=14, today=TODAY),
        "binh_dose": dose(hn, "01001", binh, "B1", cvx=COMIRNATY, days_ago=14, today=TODAY),
    }


@pytest.fixture
def an(hub, sms, people):
    _app, raw, _login = hub
    return citizen_login(raw, sms, "079090012345", "0912345678")


def test_citizen_reports_a_reaction_to_their_own_dose(hub, an, people):
    _app, raw, _login = hub
    r = raw.post("/fhir/AdverseEvent", json=reaction(people["an"], people["an_dose"]), headers=an)
    assert r.status_code == 201, r.text
    mine = raw.get("/fhir/AdverseEvent", headers=an).json()
    assert [e["resource"]["id"] for e in mine["entry"]] == [r.json()["id"]]


def test_someone_elses_dose_is_answered_as_unknown(hub, an, people):
    _app, raw, _login = hub
    other = raw.post("/fhir/AdverseEvent", json=reaction(people["an"], people["binh_dose"]), headers=an)
    missing = raw.post("/fhir/AdverseEvent", json=reaction(people["an"], "no-such-dose"), headers=an)
    assert other.status_code == missing.status_code == 404
    assert other.json()["issue"][0]["code"] == missing.json()["issue"][0]["code"]
    assert "Bình" not in other.text and "01001" not in other.text
    assert raw.get("/fhir/AdverseEvent", headers=an).json().get("total", 0) == 0


def test_forged_subject_is_refused_and_nothing_stored(hub, an, people, sites):
    _app, raw, _login = hub
    forged = raw.post("/fhir/AdverseEvent", json=reaction(people["binh"], people["an_dose"]), headers=an)
    assert forged.status_code == 403
    assert forged.json()["resourceType"] == "OperationOutcome"
    assert sites["01001"].get(f"/fhir/AdverseEvent?subject=Patient/{people['binh']}").json().get("entry", []) == []


def test_bad_reports_are_422_not_500(hub, an, people):
    _app, raw, _login = hub
    no_seriousness = reaction(people["an"], people["an_dose"])
    del no_seriousness["seriousness"]
    not_a_dose = reaction(people["an"], people["an_dose"])
    not_a_dose["suspectEntity"] = [{"instance": {"reference": f"Patient/{people['an']}"}}]
    wrong_code = reaction(people["an"], people["an_dose"], seriousness="mild")
    for body in (no_seriousness, not_a_dose, wrong_code, {**reaction(people["an"], people["an_dose"]), "actuality": "maybe"}):
        r = raw.post("/fhir/AdverseEvent", json=body, headers=an)
        assert r.status_code == 422, (r.status_code, r.text)


def test_citizen_still_cannot_write_anything_else(hub, an, people):
    _app, raw, _login = hub
    assert raw.post("/fhir/Immunization", json={"resourceType": "Immunization"}, headers=an).status_code == 403
    created = raw.post("/fhir/AdverseEvent", json=reaction(people["an"], people["an_dose"]), headers=an).json()
    assert raw.put(f"/fhir/AdverseEvent/{created['id']}", json=created, headers=an).status_code == 403
    assert raw.delete(f"/fhir/AdverseEvent/{created['id']}", headers=an).status_code == 403


def test_recording_site_finds_the_reaction_by_dose_and_by_person(hub, an, people, sites):
    _app, raw, _login = hub
    created = raw.post("/fhir/AdverseEvent", json=reaction(people["an"], people["an_dose"], "serious"), headers=an).json()
    hcm = sites["79001"]
    by_dose = hcm.get(f"/fhir/AdverseEvent?substance=Immunization/{people['an_dose']}").json()
    by_person = hcm.get(f"/fhir/AdverseEvent?subject=Patient/{people['an']}&seriousness={SERIOUSNESS_SYSTEM}|serious").json()
    assert [e["resource"]["id"] for e in by_dose["entry"]] == [created["id"]]
    assert [e["resource"]["id"] for e in by_person["entry"]] == [created["id"]]


def test_reaction_reports_are_audited(hub, an, people, client):
    app, raw, _login = hub
    created = raw.post("/fhir/AdverseEvent", json=reaction(people["an"], people["an_dose"]), headers=an).json()
    events = client.get(f"/fhir/AuditEvent?patient=Patient/{people['an']}&subtype=create").json()
    touched = [ent.get("what", {}).get("reference") for e in events.get("entry", []) for ent in e["resource"].get("entity", [])]
    assert f"AdverseEvent/{created['id']}/_history/1" in touched, events


def test_reactions_counted_by_seriousness_province_and_date(hub, an, people, sites, engine):
    app, raw, _login = hub
    for seriousness, when in (("non-serious", "2021-08-20"), ("non-serious", "2021-08-21"), ("serious", "2021-08-25")):
        assert raw.post("/fhir/AdverseEvent", json=reaction(people["an"], people["an_dose"], seriousness, when), headers=an).status_code == 201
    with engine.connect() as conn:
        assert reaction_counts(conn) == {"serious": 1, "non-serious": 2, "total": 3}
        assert reaction_counts(conn, province="79") == {"serious": 1, "non-serious": 2, "total": 3}
        assert reaction_counts(conn, province="01")["total"] == 0
        assert reaction_counts(conn, since=date(2021, 8, 21), until=date(2021, 8, 21)) == {"serious": 0, "non-serious": 1, "total": 1}
