"""A certificate names a person: only a registry-verified identity is
certified, unless an operator overrides, with a reason, in the audit trail."""

from __future__ import annotations

from tests.integration.certificates.conftest import AN, DUC

DOSES = [("208", "2021-08-02T09:00:00+07:00"), ("208", "2021-08-23T10:30:00+07:00")]


def _refused(certs, pid: str, headers=None, **body):
    r = certs.raw.post(f"/certificates/patients/{pid}", json=body or None, headers=headers or certs.site)
    return r.status_code, r.json()


def test_identity_not_yet_checked_is_refused_and_nothing_stored(certs):
    pid = certs.person(AN, DOSES)  # queued for the registry, never checked
    status, outcome = _refused(certs, pid)
    assert status == 422 and outcome["issue"][0]["code"] == "business-rule"
    assert "not verified" in outcome["issue"][0]["diagnostics"] and "pending" in outcome["issue"][0]["diagnostics"]
    assert certs.raw.get(f"/certificates/patients/{pid}", headers=certs.site).json()["certificates"] == []
    events, _ = certs.app.state.audit.search(patient=pid, action="issue-certificate")
    assert [e["outcome"] for e in events] == ["4"]


def test_registry_mismatch_is_refused(certs):
    from dataclasses import replace

    pid = certs.person(replace(DUC, birth_date="2003-08-16"), DOSES)  # the registry has the 15th
    assert certs.verify_identities() == 1
    status, outcome = _refused(certs, pid)
    assert status == 422 and "mismatch" in outcome["issue"][0]["diagnostics"]


def test_a_changed_identity_waits_for_its_recheck(certs, an):
    patient = certs.raw.get(f"/fhir/Patient/{an}", headers=certs.site).json()
    patient["name"][0]["given"] = ["Văn", "Anh"]
    assert certs.raw.put(f"/fhir/Patient/{an}", json=patient, headers=certs.site).status_code == 200
    status, outcome = _refused(certs, an)
    assert status == 422 and "pending" in outcome["issue"][0]["diagnostics"]


def test_only_an_operator_with_the_role_may_override(certs):
    pid = certs.person(AN, DOSES)
    status, _ = _refused(certs, pid, override_reason="citizen showed the chip card at the desk")
    assert status == 403
    plain_operator = certs.login("moh-console", "system/Patient.rs", kind="operator", roles="auditor")
    status, _ = _refused(certs, pid, plain_operator, override_reason="citizen showed the chip card at the desk")
    assert status == 403
    status, _ = _refused(certs, pid, certs.operator(), override_reason="   ")
    assert status == 422


def test_operator_override_issues_and_is_audited(certs):
    pid = certs.person(AN, DOSES)
    reason = "registry outage; chip CCCD checked in person at Hà Nội CDC"
    body = certs.issue(pid, certs.operator(), override_reason=reason)
    assert body["status"] == "green" and reason in body["identity_override"]
    assert "operator:moh-certificates" in body["identity_override"]
    events, _ = certs.app.state.audit.search(patient=pid, action="issue-certificate")
    (event,) = events
    assert event["outcome"] == "0" and reason in event["outcomeDesc"] and "identity pending" in event["outcomeDesc"]
    assert event["agent"][0]["name"] == "operator:moh-certificates"
    assert certs.app.state.audit.verify().ok
