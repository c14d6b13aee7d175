"""`GET /metrics`: refused without the monitoring credential; request counts
and latencies per route template; outbox depth and age, circuit breakers and
registry calls as the database and the workers see them; certificates issued."""

from __future__ import annotations


import pytest

from tests.builders import patient
from tests.integration.observability.conftest import METRICS_TOKEN, hub_app, hub_settings, login, scrape, value
from tests.web_pages import AN, DOSES, SITE, WebHub, csrf_token, portal_sign_in
from vaxhub.adapters.simulators.conditions import SimulatedConditions
from vaxhub.hub.verification.circuit import CircuitBreaker
from vaxhub.hub.verification.worker import REGISTRY_NAME, run_worker


def test_metrics_are_refused_without_the_monitoring_credential(hub_client):
    anonymous = hub_client.get("/metrics")
    assert anonymous.status_code == 401 and anonymous.json()["resourceType"] == "OperationOutcome"
    assert "vaxhub_http" not in anonymous.text
    assert hub_client.get("/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}x"}).status_code == 401
    assert hub_client.get("/metrics", headers={"authorization": f"Basic {METRICS_TOKEN}"}).status_code == 401
    system = login(hub_client, "site-79001", "system/*.cruds", site="79001")
    assert hub_client.get("/metrics", headers=system).status_code == 403
    auditor = login(hub_client, "moh-auditor", "system/AuditEvent.rs", kind="operator", roles="auditor")
    assert hub_client.get("/metrics", headers=auditor).status_code == 403
    monitoring = login(hub_client, "moh-grafana", "system/Patient.rs", kind="operator", roles="monitoring")
    assert hub_client.get("/metrics", headers=monitoring).status_code == 200
    assert hub_client.get("/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"}).status_code == 200


def test_without_a_configured_token_only_monitoring_operators_get_in(engine, tmp_path, sms):
    with hub_app(engine, tmp_path / "data", sms, metrics_token=None) as client:
        assert client.get("/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"}).status_code == 401
        monitoring = login(client, "moh-grafana", "system/Patient.rs", kind="operator", roles="monitoring")
        assert client.get("/metrics", headers=monitoring).status_code == 200


def test_a_placeholder_metrics_token_is_refused_in_production(engine, tmp_path, sms):
    from vaxhub.hub.observability.endpoint import metrics_token

    with pytest.raises(ValueError, match="METRICS_TOKEN"):
        metrics_token(hub_settings(engine, tmp_path, environment="production", metrics_token="changeme"))
    assert metrics_token(hub_settings(engine, tmp_path, environment="production")) == METRICS_TOKEN.encode()


def test_requests_are_counted_and_timed_per_route_template(hub_client):
    site = login(hub_client, "site-79001", "system/Patient.cruds", site="79001")
    before = scrape(hub_client)
    ids = [hub_client.post("/fhir/Patient", json=patient(f"07909001234{n}"), headers=site).json()["id"] for n in range(3)]
    for pid in ids:
        assert hub_client.get(f"/fhir/Patient/{pid}", headers=site).status_code == 200
    assert hub_client.get("/fhir/Patient/no-such-patient", headers=site).status_code == 404
    assert hub_client.get("/no/such/route").status_code == 404
    after = scrape(hub_client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    read = {"method": "GET", "route": "/fhir/{rtype}/{res_id}"}
    assert delta("vaxhub_http_requests_total", **read, status="200") == 3
    assert delta("vaxhub_http_requests_total", **read, status="404") == 1
    assert delta("vaxhub_http_requests_total", method="POST", route="/fhir/{rtype}", status="201") == 3
    assert delta("vaxhub_http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert delta("vaxhub_http_request_duration_seconds_count", **read) == 4
    assert delta("vaxhub_http_request_duration_seconds_sum", **read) > 0
    assert delta("vaxhub_http_request_duration_seconds_bucket", **read, le="+Inf") == 4
    # The four reads' AuditEvents (one refused) were committed outside any write, one after the other.
    assert delta("vaxhub_audit_events_per_commit_sum") == 4 and delta("vaxhub_audit_events_per_commit_count") == 4
    # Raw paths never become labels: the number of series stays bounded.
    assert not any(pid in str(labels) for _name, labels in after for pid in ids)


def test_outbox_depth_and_age_are_read_from_the_database(engine, tmp_path, sms, hub_client, simulators):
    site = login(hub_client, "site-79001", "system/Patient.cruds", site="79001")
    empty = scrape(hub_client)
    for queue in ("verification", "mpi_link"):
        assert value(empty, "vaxhub_outbox_depth", queue=queue) == 0
        assert value(empty, "vaxhub_outbox_oldest_age_seconds", queue=queue) == 0
    assert value(empty, "vaxhub_metrics_database_up") == 1
    for n in range(3):
        assert hub_client.post("/fhir/Patient", json=patient(f"07909005678{n}"), headers=site).status_code == 201
    # Another hub process (its own app on the same database) reports the same queue.
    with hub_app(engine, tmp_path / "other", sms) as other:
        queued = scrape(other)
    for queue in ("verification", "mpi_link"):
        assert value(queued, "vaxhub_outbox_depth", queue=queue) == 3
        assert value(queued, "vaxhub_outbox_oldest_age_seconds", queue=queue) >= 0
    settings = hub_settings(engine, tmp_path / "worker", population_registry_wsdl=simulators.population_wsdl_url)
    assert run_worker(settings, engine, until_idle=True, concurrency=2, poll_seconds=0.02) == 3
    drained = scrape(hub_client)
    assert value(drained, "vaxhub_outbox_depth", queue="verification") == 0
    assert value(drained, "vaxhub_outbox_depth", queue="mpi_link") == 3  # the link worker has not run


def test_registry_calls_and_their_failures_are_counted(engine, tmp_path, hub_client, simulators):
    site = login(hub_client, "site-79001", "system/Patient.cruds", site="79001")
    family, *given = AN.full_name.split(" ")
    assert hub_client.post("/fhir/Patient", json=patient(AN.cccd, family, tuple(given), gender=AN.sex, birth_date=AN.birth_date), headers=site).status_code == 201
    before = scrape(hub_client)
    settings = hub_settings(
        engine, tmp_path / "worker", population_registry_wsdl=simulators.population_wsdl_url,
        social_insurance_url=simulators.social_insurance_url, social_insurance_api_key=simulators.api_key,
    )
    assert run_worker(settings, engine, until_idle=True, concurrency=1, poll_seconds=0.02) == 1
    after = scrape(hub_client)
    for registry in (REGISTRY_NAME, "social-insurance"):
        assert value(after, "vaxhub_registry_calls_total", registry=registry, outcome="ok") - value(before, "vaxhub_registry_calls_total", registry=registry, outcome="ok") == 1
        assert value(after, "vaxhub_registry_call_duration_seconds_count", registry=registry) - value(before, "vaxhub_registry_call_duration_seconds_count", registry=registry) == 1

    # The population registry failing: each failed call is counted with its kind.
    assert hub_client.post("/fhir/Patient", json=patient("079090099999"), headers=site).status_code == 201
    simulators.population.conditions = SimulatedConditions(error_rate=1.0)
    try:
        failing = hub_settings(engine, tmp_path / "worker", population_registry_wsdl=simulators.population_wsdl_url,
                               verification_max_attempts=1)
        run_worker(failing, engine, until_idle=True, concurrency=1, poll_seconds=0.02)
    finally:
        simulators.population.conditions = SimulatedConditions()
    failed = scrape(hub_client)
    failures = sum(v for (name, labels), v in failed.items() if name == "vaxhub_registry_calls_total" and ("registry", REGISTRY_NAME) in labels
                   and ("outcome", "ok") not in labels)
    earlier = sum(v for (name, labels), v in after.items() if name == "vaxhub_registry_calls_total" and ("registry", REGISTRY_NAME) in labels
                  and ("outcome", "ok") not in labels)
    assert failures - earlier == 1


def test_the_circuit_breaker_state_is_visible(engine, hub_client):
    breaker = CircuitBreaker(engine, REGISTRY_NAME, worker="metrics-test", window=2, failure_ratio=0.5, cooldown=60)
    closed = scrape(hub_client)
    assert value(closed, "vaxhub_registry_circuit_state", registry=REGISTRY_NAME, state="closed") == 1
    assert value(closed, "vaxhub_registry_circuit_state", registry=REGISTRY_NAME, state="open") == 0
    breaker.record_failure("timeout")
    breaker.record_failure("timeout")
    opened = scrape(hub_client)
    assert value(opened, "vaxhub_registry_circuit_state", registry=REGISTRY_NAME, state="open") == 1
    assert value(opened, "vaxhub_registry_circuit_state", registry=REGISTRY_NAME, state="closed") == 0
    assert value(opened, "vaxhub_registry_circuit_opened_total", registry=REGISTRY_NAME) == 1


def test_certificates_issued_are_counted(engine, tmp_path, sms):
    from fastapi.testclient import TestClient

    from tests.integration.observability.conftest import register, bearer

    with hub_app(engine, tmp_path / "data", sms) as raw:
        site_id = f"site-{SITE}"
        key = register(raw, site_id, "system/Patient.cruds system/Immunization.cruds system/Organization.cruds", site=SITE)
        web = WebHub(raw.app, raw, None, bearer(raw, site_id, key))
        web.person(AN, DOSES, phone="0912345678")
        web.verify_identities()
        before = value(scrape(raw), "vaxhub_certificates_issued_total")
        with TestClient(raw.app) as browser:
            record = portal_sign_in(browser, sms, AN.full_name, AN.birth_date, "0912345678")
            issued = browser.post("/portal/certificate", data={"csrf": csrf_token(record.text)}, follow_redirects=False)
            assert issued.status_code == 303, issued.text
        assert value(scrape(raw), "vaxhub_certificates_issued_total") - before == 1
