"""Citizens ask for corrections with their token; the owning site works them in
/ops/corrections; accepting changes the record, re-issues the certificate and
leaves an audit trail. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import select

from tests.builders import immunization, patient
from tests.integration.certificates.conftest import AN, HUONG, Hub
from tests.integration.healthbook.conftest import citizen_login, site_imm_system
from vaxhub.hub.healthbook.corrections import (
    FIELD_SYSTEM, STEP_ACCEPTED, STEP_CERTIFICATE, STEP_FILED, STEP_RECORD_CHANGED, STEP_REJECTED, TASK_CODE_SYSTEM,
)
from vaxhub.hub.healthbook.correction_routing import PROVINCE_SYSTEM, SITE_SYSTEM
from vaxhub.hub.storage.mpi_tables import MpiRecordRow
from vaxhub.hub.storage.outbox_tables import VerificationJobRow

SCOPES = "system/Patient.cruds system/Immunization.cruds system/Organization.cruds"
AN_PHONE, HUONG_PHONE = "0912345678", "0987654321"


@dataclass
class Programme:
    hub: Hub
    sites: dict[str, dict[str, str]]
    an: str
    an_doses: list[str]
    huong: str
    huong_dose: str

    @property
    def raw(self):
        return self.hub.raw


def _person(raw, site: str, headers: dict, citizen, phone: str, state: str, doses: list[str]) -> tuple[str, list[str]]:
    family, *given = citizen.full_name.split(" ")
    res = patient(citizen.cccd, family, tuple(given), gender=citizen.sex, birth_date=citizen.birth_date, phone=phone)
    res["address"] = [{"state": state, "country": "VN"}]
    r = raw.post("/fhir/Patient", json=res, headers=headers)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    ids = []
    for n, when in enumerate(doses, start=1):
        imm = immunization(f"Patient/{pid}", f"{citizen.cccd}-{n}", cvx="208", date=when, lot=f"LOT{n}")
        imm["identifier"][0]["system"] = site_imm_system(site)
        r = raw.post("/fhir/Immunization", json=imm, headers=headers)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    return pid, ids


@pytest.fixture
def programme(hub) -> Programme:
    """Nguyễn Văn An (site 79001, Hồ Chí Minh, two doses) and Phạm Thu Hương
    (site 01001, Hà Nội, one dose), identities verified by the registry worker."""
    app, raw, login = hub
    sites = {code: login(f"site-{code}", SCOPES, site=code) for code in ("79001", "01001")}
    org = {"resourceType": "Organization", "identifier": [{"system": SITE_SYSTEM, "value": "79001"}], "name": "Trạm y tế phường Bến Nghé"}
    assert raw.post("/fhir/Organization", json=org, headers=sites["79001"]).status_code == 201
    an, an_doses = _person(raw, "79001", sites["79001"], AN, AN_PHONE, "Hồ Chí Minh", ["2021-08-02T09:00:00+07:00", "2021-08-23T10:30:00+07:00"])
    huong, huong_doses = _person(raw, "01001", sites["01001"], HUONG, HUONG_PHONE, "Hà Nội", ["2021-09-01T08:00:00+07:00"])
    hub_view = Hub(app, raw, login, sites["79001"])
    hub_view.verify_identities()
    return Programme(hub_view, sites, an, an_doses, huong, huong_doses[0])


def operator(programme: Programme, name: str, *, site: str | None, roles: str = "corrections") -> dict[str, str]:
    return programme.hub.login(name, "system/Patient.rs", kind="operator", roles=roles, site=site)


def claim(field: str, element: str, value) -> dict:
    return {"type": {"coding": [{"system": FIELD_SYSTEM, "code": field}]}, element: value}


def correction(focus: str, patient_id: str, *inputs: dict, description: str | None = "Số lô ghi sai") -> dict:
    task = {
        "resourceType": "Task",
        "status": "requested",
        "intent": "proposal",
        "code": {"coding": [{"system": TASK_CODE_SYSTEM, "code": "change"}]},
        "focus": {"reference": focus},
        "for": {"reference": f"Patient/{patient_id}"},
    }
    if description:
        task["description"] = description
    if inputs:
        task["input"] = list(inputs)
    return task


@pytest.fixture
def an_token(programme, sms) -> dict[str, str]:
    return citizen_login(programme.raw, sms, AN.cccd, AN_PHONE)


def file(programme: Programme, token: dict, task: dict) -> dict:
    r = programme.raw.post("/fhir/Task", json=task, headers=token)
    assert r.status_code == 201, r.text
    return r.json()


def queue_ids(programme: Programme, headers: dict, status: str = "requested") -> list[str]:
    r = programme.raw.get("/ops/corrections", params={"status": status}, headers=headers)
    assert r.status_code == 200, r.text
    return [c["id"] for c in r.json()["corrections"]]


def certificates_of(programme: Programme, pid: str) -> list[dict]:
    r = programme.raw.get(f"/certificates/patients/{pid}", headers=programme.sites["79001"])
    assert r.status_code == 200, r.text
    return r.json()["certificates"]


def test_accepted_lot_number_correction_changes_the_record_reissues_the_certificate_and_is_audited(programme, an_token):
    raw, dose = programme.raw, programme.an_doses[1]
    old = programme.hub.issue(programme.an)["uvci"]
    old_card = programme.hub.download(old, "shc.txt").text

    task = file(programme, an_token, correction(f"Immunization/{dose}", programme.an, claim("lotNumber", "valueString", "FK5127")))
    assert task["owner"]["identifier"] == {"system": SITE_SYSTEM, "value": "79001"}
    assert task["owner"]["reference"].startswith("Organization/")
    assert task["requester"] == {"reference": f"Patient/{programme.an}"}

    hcm, hanoi = operator(programme, "ops-79001", site="79001"), operator(programme, "ops-01001", site="01001")
    assert task["id"] in queue_ids(programme, hcm)
    assert task["id"] not in queue_ids(programme, hanoi, "all")
    assert raw.get(f"/ops/corrections/{task['id']}", headers=hanoi).status_code == 404
    assert raw.post(f"/ops/corrections/{task['id']}/accept", headers=hanoi).status_code == 404
    detail = raw.get(f"/ops/corrections/{task['id']}", headers=hcm).json()
    assert detail["claims"] == [{"field": "lotNumber", "claimed": "FK5127", "recorded": "LOT2"}]

    accepted = raw.post(f"/ops/corrections/{task['id']}/accept", headers=hcm)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["changed"] == [f"Immunization/{dose}/_history/2"]

    # The stored dose: a new version with the corrected lot; the old one kept.
    site = programme.sites["79001"]
    current = raw.get(f"/fhir/Immunization/{dose}", headers=site).json()
    assert current["lotNumber"] == "FK5127" and current["meta"]["versionId"] == "2"
    assert current["meta"]["source"] == "urn:vaxhub:site:79001"  # still the site's record
    assert raw.get(f"/fhir/Immunization/{dose}/_history/1", headers=site).json()["lotNumber"] == "LOT2"

    # A new certificate carries the corrected lot; the old one is revoked as superseded.
    certs = {c["uvci"]: c for c in certificates_of(programme, programme.an)}
    (new,) = [u for u in certs if u != old]
    assert certs[old]["revoked"] and not certs[new]["revoked"]
    verifier = programme.hub.app.state.certificates
    fresh = verifier.verify(programme.hub.download(new, "shc.txt").text)
    assert fresh.valid, fresh.errors
    lots = [e["resource"].get("lotNumber") for e in fresh.payload["vc"]["credentialSubject"]["fhirBundle"]["entry"][1:]]
    assert lots == ["LOT1", "FK5127"]
    stale = verifier.verify(old_card)
    assert stale.revoked and not stale.valid

    # The citizen sees the outcome on their Task.
    mine = raw.get(f"/fhir/Task/{task['id']}", headers=an_token).json()
    assert mine["status"] == "completed" and mine["businessStatus"]["text"] == "applied; certificate re-issued"
    outputs = [o.get("valueReference", {}).get("reference") or o.get("valueString") for o in mine["output"]]
    assert outputs == [f"Immunization/{dose}/_history/2", new]

    # The audit trail, read back through the AuditEvent API, shows every step.
    auditor = programme.hub.login("auditor", "system/Patient.rs", kind="operator", roles="auditor")
    trail = raw.get("/fhir/AuditEvent", params={"patient": programme.an, "_count": 200}, headers=auditor).json()
    about_task = [
        e["resource"] for e in trail["entry"]
        if any(ent.get("what", {}).get("reference", "").startswith(f"Task/{task['id']}") for ent in e["resource"].get("entity", []))
    ]
    steps = {e.get("outcomeDesc", "").split(":")[0] for e in about_task}
    assert {STEP_FILED, STEP_ACCEPTED, STEP_RECORD_CHANGED, STEP_CERTIFICATE} <= steps
    filed = next(e for e in about_task if e.get("outcomeDesc", "").startswith(STEP_FILED))
    assert filed["agent"][0]["who"] == {"reference": f"Patient/{programme.an}"}
    changed = next(e for e in about_task if e.get("outcomeDesc", "").startswith(STEP_RECORD_CHANGED))
    assert {"reference": f"Immunization/{dose}/_history/2"} in [ent.get("what") for ent in changed["entity"]]
    issued = [e["resource"] for e in trail["entry"] if new in e["resource"].get("outcomeDesc", "")]
    assert any(e["subtype"][0]["code"] == "issue-certificate" for e in issued)


def test_rejected_correction_shows_the_sites_reason_and_changes_nothing(programme, an_token):
    raw = programme.raw
    task = file(programme, an_token, correction(f"Patient/{programme.an}", programme.an, claim("birthDate", "valueDate", "1990-04-03")))
    assert task["owner"]["identifier"]["value"] == "79001"  # the site that wrote the Patient record
    hcm = operator(programme, "ops-79001", site="79001")
    reason = "Ngày sinh trên CCCD là 04/03/1990, đúng với hồ sơ"
    rejected = raw.post(f"/ops/corrections/{task['id']}/reject", json={"reason": reason}, headers=hcm)
    assert rejected.status_code == 200, rejected.text
    mine = raw.get("/fhir/Task", params={"patient": programme.an}, headers=an_token).json()
    (shown,) = [e["resource"] for e in mine["entry"]]
    assert shown["status"] == "rejected" and shown["statusReason"]["text"] == reason
    record = raw.get(f"/fhir/Patient/{programme.an}", headers=programme.sites["79001"]).json()
    assert record["birthDate"] == AN.birth_date and record["meta"]["versionId"] == "1"
    again = raw.post(f"/ops/corrections/{task['id']}/accept", headers=hcm)
    assert again.status_code == 409 and again.json()["resourceType"] == "OperationOutcome"
    assert task["id"] in queue_ids(programme, hcm, "rejected") and task["id"] not in queue_ids(programme, hcm)
    auditor = programme.hub.login("auditor", "system/Patient.rs", kind="operator", roles="auditor")
    trail = raw.get("/fhir/AuditEvent", params={"patient": programme.an, "_count": 200}, headers=auditor).json()
    assert any(e["resource"].get("outcomeDesc", "").startswith(f"{STEP_REJECTED}: Task/{task['id']}") for e in trail["entry"])


def test_the_site_edits_the_claimed_value_before_accepting(programme, an_token):
    raw, dose = programme.raw, programme.an_doses[1]
    task = file(programme, an_token, correction(f"Immunization/{dose}", programme.an, claim("occurrenceDateTime", "valueDateTime", "2021-08-24"),
                                                 description="Mũi 2 tiêm ngày 24/8, buổi sáng"))
    hcm = operator(programme, "ops-79001", site="79001")
    edit = {"input": [claim("occurrenceDateTime", "valueDateTime", "2021-08-24T09:15:00+07:00")], "note": "Giờ tiêm theo sổ của trạm"}
    accepted = raw.post(f"/ops/corrections/{task['id']}/accept", json=edit, headers=hcm)
    assert accepted.status_code == 200, accepted.text
    record = raw.get(f"/fhir/Immunization/{dose}", headers=programme.sites["79001"]).json()
    assert record["occurrenceDateTime"] == "2021-08-24T09:15:00+07:00"
    closed = raw.get(f"/fhir/Task/{task['id']}", headers=an_token).json()
    assert closed["input"][0]["valueDateTime"] == "2021-08-24T09:15:00+07:00"
    assert closed["statusReason"]["text"] == "Giờ tiêm theo sổ của trạm"
    as_filed = raw.get(f"/fhir/Task/{task['id']}/_history/1", headers=an_token).json()
    assert as_filed["input"][0]["valueDateTime"] == "2021-08-24"  # the citizen's claim is kept in the history


def test_missing_dose_goes_to_the_province_and_accepting_creates_it(programme, an_token):
    raw = programme.raw
    dose = {
        "resourceType": "Immunization", "id": "dose3", "status": "completed",
        "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "208"}]},
        "patient": {"reference": f"Patient/{programme.an}"}, "occurrenceDateTime": "2022-01-10", "lotNumber": "FL0007",
    }
    task = correction(f"Patient/{programme.an}", programme.an, claim("missing-dose", "valueReference", {"reference": "#dose3"}),
                      claim("evidence", "valueAttachment", {"contentType": "image/jpeg", "data": "/9j/4AAQSkZJRg=="}),
                      description="Mũi nhắc lại tiêm ở bệnh viện dã chiến, chưa có trên hệ thống")
    task["contained"] = [dose]
    filed = file(programme, an_token, task)
    assert filed["owner"]["identifier"] == {"system": PROVINCE_SYSTEM, "value": "79"}
    site_op, province_op = operator(programme, "ops-79001", site="79001"), operator(programme, "ops-hcm", site="79")
    national = operator(programme, "ops-moh", site=None)
    assert filed["id"] not in queue_ids(programme, site_op)
    assert filed["id"] in queue_ids(programme, province_op) and filed["id"] in queue_ids(programme, national)
    accepted = raw.post(f"/ops/corrections/{filed['id']}/accept", headers=province_op)
    assert accepted.status_code == 200, accepted.text
    (created,) = accepted.json()["changed"]
    new_id = created.split("/")[1]
    stored = raw.get(f"/fhir/Immunization/{new_id}", headers=programme.sites["79001"]).json()
    assert stored["patient"] == {"reference": f"Patient/{programme.an}"} and stored["lotNumber"] == "FL0007"
    assert stored["primarySource"] is False and "source" not in stored.get("meta", {})
    mine = raw.get("/fhir/Immunization", params={"patient": programme.an}, headers=an_token).json()
    assert new_id in [e["resource"]["id"] for e in mine["entry"]]


@pytest.mark.parametrize("case", [
    "wrong-code", "not-requested", "unknown-field", "field-of-another-record", "birth-in-future", "two-values",
    "site-fields", "stray-contained", "nothing-said", "impossible-date",
])
def test_malformed_requests_are_422_and_nothing_is_stored(programme, an_token, case):
    pid, dose = programme.an, programme.an_doses[0]
    task = correction(f"Patient/{pid}", pid, claim("birthDate", "valueDate", "1990-04-03"))
    if case == "wrong-code":
        task["code"]["coding"][0]["code"] = "fulfill"
    elif case == "not-requested":
        task["status"] = "completed"
    elif case == "unknown-field":
        task["input"] = [claim("address", "valueString", "Quận 1")]
    elif case == "field-of-another-record":
        task = correction(f"Immunization/{dose}", pid, claim("birthDate", "valueDate", "1990-04-03"))
    elif case == "birth-in-future":
        task["input"] = [claim("birthDate", "valueDate", "2190-04-03")]
    elif case == "two-values":
        task["input"] = [{**claim("birthDate", "valueDate", "1990-04-03"), "valueString": "1990"}]
    elif case == "site-fields":
        task["businessStatus"] = {"text": "applied"}
    elif case == "stray-contained":
        task["contained"] = [{"resourceType": "Patient", "id": "x"}]
    elif case == "nothing-said":
        task = correction(f"Patient/{pid}", pid, description=None)
    elif case == "impossible-date":
        task["input"] = [claim("birthDate", "valueDate", "1990-02-30")]
    r = programme.raw.post("/fhir/Task", json=task, headers=an_token)
    assert r.status_code in (400, 422), r.text
    assert r.status_code == 422 or case == "impossible-date"  # the model itself refuses a 30 February date as malformed
    assert r.json()["resourceType"] == "OperationOutcome" and r.json()["issue"][0]["severity"] == "error"
    assert programme.raw.get("/fhir/Task", headers=an_token).json().get("total", 0) == 0


def test_a_citizen_cannot_file_about_or_read_someone_elses_records(programme, an_token, sms):
    raw = programme.raw
    theirs = raw.post("/fhir/Task", json=correction(f"Immunization/{programme.huong_dose}", programme.an, claim("lotNumber", "valueString", "X1")), headers=an_token)
    missing = raw.post("/fhir/Task", json=correction("Immunization/no-such-dose", programme.an, claim("lotNumber", "valueString", "X1")), headers=an_token)
    assert theirs.status_code == missing.status_code == 404
    assert "Hương" not in theirs.text and "01001" not in theirs.text
    forged = raw.post("/fhir/Task", json=correction(f"Patient/{programme.huong}", programme.huong, claim("birthDate", "valueDate", "1985-11-21")), headers=an_token)
    assert forged.status_code == 403
    huong_token = citizen_login(raw, sms, HUONG.cccd, HUONG_PHONE)
    hers = file(programme, huong_token, correction(f"Immunization/{programme.huong_dose}", programme.huong, claim("lotNumber", "valueString", "AB12")))
    assert raw.get(f"/fhir/Task/{hers['id']}", headers=an_token).status_code == 404
    assert raw.get("/fhir/Task", headers=an_token).json().get("total", 0) == 0
    assert [e["resource"]["id"] for e in raw.get("/fhir/Task", headers=huong_token).json()["entry"]] == [hers["id"]]
    # Citizens and sites alike change Tasks only through the queue.
    closed = {**hers, "status": "completed"}
    assert raw.put(f"/fhir/Task/{hers['id']}", json=closed, headers=huong_token).status_code == 403
    admin = programme.hub.login("national-admin", "system/*.cruds")
    assert raw.put(f"/fhir/Task/{hers['id']}", json=closed, headers=admin).status_code == 403
    assert raw.post("/fhir/Task", json=correction(f"Patient/{programme.an}", programme.an, claim("gender", "valueCode", "male")), headers=admin).status_code == 403


def test_a_record_changed_since_filing_is_a_conflict_and_the_task_stays_open(programme, an_token):
    raw, dose = programme.raw, programme.an_doses[0]
    task = file(programme, an_token, correction(f"Immunization/{dose}", programme.an, claim("lotNumber", "valueString", "FA1234")))
    site = programme.sites["79001"]
    record = raw.get(f"/fhir/Immunization/{dose}", headers=site).json()
    assert raw.put(f"/fhir/Immunization/{dose}", json={**record, "lotNumber": "FA9999"}, headers=site).status_code == 200
    hcm = operator(programme, "ops-79001", site="79001")
    conflict = raw.post(f"/ops/corrections/{task['id']}/accept", headers=hcm)
    assert conflict.status_code == 409 and conflict.json()["resourceType"] == "OperationOutcome"
    assert raw.get(f"/fhir/Immunization/{dose}", headers=site).json()["lotNumber"] == "FA9999"
    assert raw.get(f"/fhir/Task/{task['id']}", headers=an_token).json()["status"] == "requested"


def test_nothing_is_half_stored_when_the_change_fails(programme, an_token):
    raw = programme.raw
    task = file(programme, an_token, correction(f"Patient/{programme.an}", programme.an, claim("birthDate", "valueDate", "1990-04-03")))
    hcm = operator(programme, "ops-79001", site="79001")
    bad_edit = raw.post(f"/ops/corrections/{task['id']}/accept", json={"input": [claim("birthDate", "valueDate", "1990-02-30")]}, headers=hcm)
    assert bad_edit.status_code == 422 and bad_edit.json()["issue"][0]["expression"] == ["Task.input[0].valueDate"]
    # A missing dose naming a place the hub does not know fails at the very end of the unit.
    dose = {"resourceType": "Immunization", "id": "d", "status": "completed", "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "208"}]},
            "patient": {"reference": f"Patient/{programme.an}"}, "occurrenceDateTime": "2022-01-10", "location": {"reference": "Location/nowhere"}}
    late = raw.post(f"/ops/corrections/{task['id']}/accept", headers=hcm,
                    json={"input": [claim("birthDate", "valueDate", "1990-04-03"), claim("missing-dose", "valueReference", {"reference": "#d"})], "contained": [dose]})
    assert late.status_code == 422, late.text
    assert raw.get(f"/fhir/Patient/{programme.an}", headers=programme.sites["79001"]).json()["meta"]["versionId"] == "1"
    assert raw.get(f"/fhir/Task/{task['id']}", headers=an_token).json()["meta"]["versionId"] == "1"
    assert len(raw.get("/fhir/Immunization", params={"patient": programme.an}, headers=an_token).json()["entry"]) == 2
    auditor = programme.hub.login("auditor", "system/Patient.rs", kind="operator", roles="auditor")
    trail = raw.get("/fhir/AuditEvent", params={"patient": programme.an, "_count": 200}, headers=auditor).json()
    assert not [e for e in trail["entry"] if e["resource"].get("outcomeDesc", "").startswith((STEP_ACCEPTED, STEP_RECORD_CHANGED))]


def test_an_accepted_personal_details_correction_requeues_verification_and_linking(programme, an_token):
    raw, engine = programme.raw, programme.hub.app.state.engine
    old = programme.hub.issue(programme.an)["uvci"]
    task = file(programme, an_token, correction(f"Patient/{programme.an}", programme.an, claim("name.given", "valueString", "Văn Ân")))
    hcm = operator(programme, "ops-79001", site="79001")
    accepted = raw.post(f"/ops/corrections/{task['id']}/accept", headers=hcm)
    assert accepted.status_code == 200, accepted.text
    record = raw.get(f"/fhir/Patient/{programme.an}", headers=programme.sites["79001"]).json()
    assert record["name"][0]["given"] == ["Văn", "Ân"] and record["meta"]["versionId"] == "2"
    job, mpi = VerificationJobRow.__table__, MpiRecordRow.__table__
    with engine.connect() as conn:
        queued = conn.execute(select(job.c.patient_version, job.c.state, job.c.claim).where(job.c.patient_id == programme.an)).one()
        linking = conn.execute(select(mpi.c.state).where(mpi.c.record_id == programme.an)).scalar_one()
    assert (queued.patient_version, queued.state) == (2, "queued") and queued.claim["full_name"] == "Nguyễn Văn Ân"
    assert linking == "queued"
    # The new name waits for the registry before a certificate carries it: the old one stays valid, and the Task says so.
    assert accepted.json()["certificates"] == [] and "not verified" in accepted.json()["certificateWaiting"]
    assert [c["uvci"] for c in certificates_of(programme, programme.an) if not c["revoked"]] == [old]
    closed = raw.get(f"/fhir/Task/{task['id']}", headers=an_token).json()
    assert closed["businessStatus"]["text"].startswith("applied; certificate not re-issued yet")


def test_the_queue_needs_the_corrections_role(programme):
    raw = programme.raw
    assert raw.get("/ops/corrections", headers=programme.sites["79001"]).status_code == 403
    assert raw.get("/ops/corrections", headers=operator(programme, "ops-audit", site=None, roles="auditor")).status_code == 403
    assert raw.get("/ops/corrections", params={"status": "done"}, headers=operator(programme, "ops-moh", site=None)).status_code == 400


def test_capability_statement_describes_task_truthfully(programme):
    statement = programme.raw.get("/fhir/metadata").json()
    (task,) = [r for r in statement["rest"][0]["resource"] if r["type"] == "Task"]
    interactions = {i["code"] for i in task["interaction"]}
    assert {"create", "read", "search-type"} <= interactions and not {"update", "delete"} & interactions
    params = {p["name"] for p in task["searchParam"]}
    assert {"status", "owner", "owner-identifier", "focus", "patient", "code", "authored-on", "_lastUpdated"} <= params


def test_the_portal_files_the_same_task_and_shows_the_sites_answer(programme, sms):
    from fastapi.testclient import TestClient

    from tests.web_pages import csrf_token, portal_sign_in

    raw, dose = programme.raw, programme.an_doses[0]
    with TestClient(programme.hub.app) as browser:
        portal_sign_in(browser, sms, AN.full_name, AN.birth_date, AN_PHONE)
        form = csrf_token(browser.get("/portal/correction").text)
        filed = browser.post("/portal/correction", data={
            "csrf": form, "focus": f"Immunization/{dose}", "field": "lotNumber", "value": " FA5829 ", "description": "Số lô trên phiếu là FA5829",
        })
        assert filed.status_code == 201, filed.text
        half = browser.post("/portal/correction", data={"csrf": form, "focus": f"Immunization/{dose}", "field": "lotNumber", "value": "", "description": "x"})
        assert half.status_code == 400
        hcm = operator(programme, "ops-79001", site="79001")
        (task_id,) = queue_ids(programme, hcm)
        task = raw.get(f"/ops/corrections/{task_id}", headers=hcm).json()["task"]
        assert task["input"] == [claim("lotNumber", "valueString", "FA5829")]  # the API's shape
        assert task["owner"]["identifier"] == {"system": SITE_SYSTEM, "value": "79001"}
        reason = "Lô FA5829 không được cấp cho trạm vào ngày đó"
        assert raw.post(f"/ops/corrections/{task_id}/reject", json={"reason": reason}, headers=hcm).status_code == 200
        page = browser.get("/portal/correction").text
        assert f'data-task="{task_id}" data-status="rejected"' in page and reason in page
