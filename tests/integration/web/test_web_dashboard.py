"""The operator dashboard: operators only, aggregates that match what is
stored, filters by province and date, a site operator limited to their site."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from tests.web_pages import AN, DUC, HOA, HUONG, SITE, csrf_token, dashboard_sign_in
from vaxhub.fhir.search_params import date_range


@pytest.fixture
def programme(web) -> dict[str, str]:
    """Four people in three provinces; one of them does not match the registry."""
    org = web.site_organization()
    people = {
        "an": web.person(AN, [("208", "2021-08-02T09:00:00+07:00"), ("208", "2021-08-23T10:30:00+07:00")],
                         phone="0912345678", province="Hà Nội", site_org=org),
        "hoa": web.person(HOA, [("208", "2021-08-02T15:00:00+07:00")], province="Thành phố Hà Nội", birth_date="1960", site_org=org),
        "huong": web.person(HUONG, [("207", "2021-08-02"), ("207", "2021-08-23"), ("207", "2022-01-10")], province="TP. Hồ Chí Minh"),
        "duc": web.person(DUC, [("210", "2021-09-01T23:30:00+07:00")], province="Hải Phòng"),
    }
    web.raw.post("/fhir/Immunization", headers=web.site, json={
        "resourceType": "Immunization", "status": "entered-in-error", "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "210"}]},
        "patient": {"reference": f"Patient/{people['duc']}"}, "occurrenceDateTime": "2021-09-02",
    })
    web.verify_identities()
    return {**people, "org": org}


@pytest.fixture
def operator(web, browser_client):
    dashboard_sign_in(browser_client, web.operator_token())
    return browser_client


def _data(client, **params):
    response = client.get("/dashboard/data", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_dashboard_needs_an_operator(web, browser_client, two_people, sms):
    assert browser_client.get("/dashboard", follow_redirects=False).headers["location"] == "/dashboard/sign-in"
    assert browser_client.get("/dashboard/data").status_code == 401
    form = csrf_token(browser_client.get("/dashboard/sign-in").text)
    verifier = web.login("border-checker", "system/Patient.rs", kind="verifier")["authorization"].split()[1]
    site = web.site["authorization"].split()[1]
    for token, status in [(verifier, 403), (site, 403), ("not-a-token", 401), ("", 401)]:
        assert browser_client.post("/dashboard/sign-in", data={"csrf": form, "token": token}).status_code == status
        assert browser_client.get("/dashboard/data", headers={"authorization": f"Bearer {token}"}).status_code in (401, 403)
    assert browser_client.get("/dashboard", follow_redirects=False).status_code == 303
    # The sign-in form is protected like every other form.
    assert browser_client.post("/dashboard/sign-in", data={"token": web.operator_token()}).status_code == 403


def test_operator_session_cookie_is_httponly_strict_and_limited_to_the_dashboard(web, browser_client):
    signed = dashboard_sign_in(browser_client, web.operator_token())
    cookie = next(c for c in signed.headers.get_list("set-cookie") if c.startswith("vaxhub_operator="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/dashboard" in cookie
    max_age = int(cookie.split("Max-Age=")[1].split(";")[0])
    assert 0 < max_age <= web.app.state.settings.access_token_seconds


def test_figures_match_the_stored_records(web, programme, operator):
    figures = _data(operator)
    # Independently, from the FHIR API: completed doses by local day, people by province.
    doses = web.raw.get("/fhir/Immunization", params={"status": "completed", "_count": 500}, headers=web.site).json()["entry"]
    by_day = Counter((date_range(e["resource"]["occurrenceDateTime"])[0] + dt.timedelta(hours=7)).date().isoformat() for e in doses)
    assert {d["day"]: d["doses"] for d in figures["doses_per_day"]} == dict(by_day)
    assert figures["doses"] == len(doses) == 7
    per_patient = Counter(e["resource"]["patient"]["reference"] for e in doses)
    assert figures["coverage"]["people"] == 4
    assert [d["people"] for d in figures["coverage"]["by_dose"]] == [
        sum(1 for n in per_patient.values() if n >= level) for level in (1, 2, 3)
    ] == [4, 2, 1]
    provinces = {p["name"]: (p["people"], p["dose1"], p["dose2"], p["dose3"]) for p in figures["coverage"]["by_province"]}
    assert provinces == {"Hà Nội": (2, 2, 1, 0), "Hồ Chí Minh": (1, 1, 1, 1), "Hải Phòng": (1, 1, 0, 0)}
    verification = figures["verification"]
    assert verification["by_registry"]["population-registry"] == {"mismatch": 1, "verified": 3}
    assert verification["checked"] == 4 and verification["mismatch_rate"] == pytest.approx(0.25)
    assert sum(s["checked"] for s in verification["by_site"]) == 4
    assert figures["backlog"] == {"corrections": 0, "reviews": 0, "reactions": 0, "verification_pending": 0, "verification_dead": 0}
    assert {p["name"] for p in figures["provinces"]} == {"Hà Nội", "Hồ Chí Minh", "Hải Phòng"}


def test_filters_by_province_and_date(web, programme, operator):
    hanoi = _data(operator, province="01")
    assert hanoi["doses"] == 3 and hanoi["coverage"]["people"] == 2
    assert hanoi["verification"]["by_registry"]["population-registry"] == {"mismatch": 1, "verified": 1}
    august = _data(operator, since="2021-08-01", until="2021-08-31")
    assert august["doses"] == 5 and [d["day"] for d in august["doses_per_day"]] == ["2021-08-02", "2021-08-23"]
    # Coverage counts doses up to the end date: Hương had two by then, Đức none.
    assert [d["people"] for d in august["coverage"]["by_dose"]] == [3, 2, 0]
    # 23:30 local on 1 September is 1 September, though it is 16:30 UTC.
    assert _data(operator, since="2021-09-01", until="2021-09-01")["doses_per_day"] == [{"day": "2021-09-01", "doses": 1}]
    both = _data(operator, province="79", until="2021-12-31")
    assert both["doses"] == 2 and both["coverage"]["by_province"][0]["dose3"] == 0


def test_a_site_operator_sees_only_their_site(web, programme, browser_client):
    dashboard_sign_in(browser_client, web.operator_token(site=SITE, client_id="site-operator"))
    figures = _data(browser_client)
    assert figures["filter"]["site"] == SITE
    assert figures["doses"] == 3  # the doses the site gave (An's two, Hoa's one)
    assert figures["coverage"]["people"] == 2  # the people the site manages
    assert sum(figures["verification"]["by_registry"]["population-registry"].values()) == 4  # every Patient it wrote


def test_corrections_filed_in_the_portal_are_counted(web, programme, operator, sms):
    from fastapi.testclient import TestClient

    from tests.web_pages import portal_sign_in

    with TestClient(web.app) as citizen:
        portal_sign_in(citizen, sms, "Nguyễn Văn An", "1990-03-04", "0912345678")
        form = csrf_token(citizen.get("/portal/correction").text)
        assert citizen.post("/portal/correction", data={"csrf": form, "focus": f"Patient/{programme['an']}", "description": "Sai ngày sinh"}).status_code == 201
    assert _data(operator)["backlog"]["corrections"] == 1
    assert _data(operator, province="01")["backlog"]["corrections"] == 1
    assert _data(operator, province="79")["backlog"]["corrections"] == 0


@pytest.mark.parametrize("params", [{"province": "99"}, {"province": "x"}, {"since": "2021-13-01"}, {"since": "2021-09-01", "until": "2021-08-01"}])
def test_an_invalid_filter_is_a_400(operator, programme, params):
    assert operator.get("/dashboard/data", params=params).status_code == 400
    page = operator.get("/dashboard", params=params)
    assert page.status_code == 400 and "<html" in page.text


def test_the_page_renders_the_figures_for_operators(web, programme, operator):
    page = operator.get("/dashboard", params={"lang": "en"})
    assert page.status_code == 200
    assert 'id="total-doses">7<' in page.text and 'id="mismatch-rate">25.0' in page.text
    assert "/dashboard/data?lang=en" in page.text
    for chart in ("chart-doses", "chart-dose-number", "chart-provinces", "chart-registries", "chart-sites", "chart-backlog"):
        assert f'id="{chart}"' in page.text
