"""The citizen portal: lookup that reveals nothing, a one-time code, a session
that reaches only the person's own records, CSRF on every form, an
AuditEvent for every read, and the certificate download."""

from __future__ import annotations

import io
import re

import pytest
from pypdf import PdfReader

from tests.web_pages import AN, HUONG, csrf_token, portal_sign_in
from vaxhub.hub.web.portal import SESSION_COOKIE


def _lookup(client, **fields):
    token = csrf_token(client.get("/portal").text)
    return client.post("/portal/lookup", data={"csrf": token, **fields}, follow_redirects=False)


def test_lookup_answers_the_same_whether_or_not_the_person_exists(web, two_people, browser_client, sms):
    known = {"name": "Nguyễn Văn An", "birth_date": "1990-03-04", "phone": "0912345678"}
    unknown = [
        {**known, "name": "Nguyễn Văn Bình"},
        {**known, "birth_date": "1990-03-05"},
        {**known, "phone": "0911111111"},
        {"name": "Trần Thị Không Có", "birth_date": "1970-01-01", "phone": "0900000000"},
    ]
    answers = []
    for fields in [known, *unknown]:
        response = _lookup(browser_client, **fields)
        code_page = browser_client.get("/portal/code")
        answers.append((response.status_code, response.headers["location"], code_page.status_code,
                        re.sub(r'value="[0-9a-f]{64}"', "", code_page.text)))
    assert len(set(answers)) == 1, "the lookup must not reveal whether the details match someone"
    # Only the person whose details matched got a code, on the phone on record.
    assert [to for to, _ in sms.messages] == ["+84912345678"]


def test_lookup_ignores_case_diacritics_and_the_form_of_the_date_and_phone(web, two_people, browser_client, sms):
    response = _lookup(browser_client, name="  nguyen van AN ", birth_date="04/03/1990", phone="+84 912 345 678")
    assert response.status_code == 303
    assert sms.last_to("+84912345678") is not None


def test_citizen_signs_in_with_the_code_and_sees_their_doses_and_colour(web, two_people, browser_client, sms):
    record = portal_sign_in(browser_client, sms, "Nguyễn Văn An", "1990-03-04", "0912345678")
    assert record.status_code == 200
    assert "Nguyễn Văn An" in record.text and "Phạm Thu Hương" not in record.text
    assert record.text.count('class="dose"') == 2
    assert 'data-colour="green"' in record.text


def test_session_cookie_is_httponly_samesite_strict_and_limited_to_the_portal(web, two_people, browser_client, sms):
    token = csrf_token(browser_client.get("/portal").text)
    browser_client.post("/portal/lookup", data={"csrf": token, "name": "Nguyễn Văn An", "birth_date": "1990-03-04", "phone": "0912345678"})
    code = re.search(r"\d{6}", sms.last_to("+84912345678")).group(0)
    form = csrf_token(browser_client.get("/portal/code").text)
    signed = browser_client.post("/portal/code", data={"csrf": form, "code": code}, follow_redirects=False)
    cookie = next(c for c in signed.headers.get_list("set-cookie") if c.startswith(f"{SESSION_COOKIE}="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/portal" in cookie and "Max-Age=" in cookie


def test_wrong_code_does_not_sign_in(web, two_people, browser_client, sms):
    _lookup(browser_client, name="Nguyễn Văn An", birth_date="1990-03-04", phone="0912345678")
    form = csrf_token(browser_client.get("/portal/code").text)
    wrong = browser_client.post("/portal/code", data={"csrf": form, "code": "000000"})
    assert wrong.status_code == 401
    assert browser_client.get("/portal/record", follow_redirects=False).headers["location"] == "/portal"


def test_a_citizen_session_cannot_reach_another_persons_records(web, two_people, browser_client, sms):
    an, huong = two_people
    web.raw.post(f"/certificates/patients/{huong}", headers=web.site)  # Hương has a certificate
    portal_sign_in(browser_client, sms, "Nguyễn Văn An", "1990-03-04", "0912345678")
    their_dose = web.raw.get("/fhir/Immunization", params={"patient": huong}, headers=web.site).json()["entry"][0]["resource"]["id"]
    form = csrf_token(browser_client.get("/portal/correction").text)
    for focus in (f"Immunization/{their_dose}", f"Patient/{huong}"):
        refused = browser_client.post("/portal/correction", data={"csrf": form, "focus": focus, "description": "sai ngày"})
        assert refused.status_code == 404, focus
    # The session's token is a patient token: through the API, the other person does not exist.
    session = {"authorization": f"Bearer {browser_client.cookies.get(SESSION_COOKIE)}"}
    assert web.raw.get(f"/fhir/Patient/{huong}", headers=session).status_code == 404
    assert web.raw.get(f"/fhir/Immunization/{their_dose}", headers=session).status_code == 404
    # The record page and downloads are always the session's own.
    record = browser_client.get("/portal/record")
    assert "Phạm Thu Hương" not in record.text
    assert browser_client.get("/portal/certificate/certificate.pdf").status_code == 404  # An has none yet


def test_forms_without_the_sessions_csrf_token_are_refused(web, two_people, browser_client, sms):
    refused = browser_client.post("/portal/lookup", data={"name": "Nguyễn Văn An", "birth_date": "1990-03-04", "phone": "0912345678"})
    assert refused.status_code == 403
    assert sms.messages == []
    before = csrf_token(browser_client.get("/portal").text)
    portal_sign_in(browser_client, sms, "Nguyễn Văn An", "1990-03-04", "0912345678")
    # Signing in starts a new form key: the token from before no longer works.
    for path, data in [
        ("/portal/certificate", {}),
        ("/portal/correction", {"focus": "Patient/x", "description": "x"}),
        ("/portal/sign-out", {}),
    ]:
        for token in (before, "", "0" * 64):
            assert browser_client.post(path, data={"csrf": token, **data}).status_code == 403, (path, token)
    assert browser_client.get("/portal/record").status_code == 200  # still signed in
    # Another browser's token is worthless here too.
    with type(browser_client)(web.app) as other:
        foreign = csrf_token(other.get("/portal").text)
    assert browser_client.post("/portal/sign-out", data={"csrf": foreign}).status_code == 403


def test_citizen_gets_and_downloads_their_certificate(web, two_people, browser_client, sms):
    an, _ = two_people
    record = portal_sign_in(browser_client, sms, "Nguyễn Văn An", "1990-03-04", "0912345678")
    issued = browser_client.post("/portal/certificate", data={"csrf": csrf_token(record.text)}, follow_redirects=False)
    assert issued.status_code == 303
    record = browser_client.get("/portal/record")
    assert 'id="download-pdf"' in record.text
    pdf = browser_client.get("/portal/certificate/certificate.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert "attachment" in pdf.headers["content-disposition"]
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "Nguyễn Văn An" in text
    png = browser_client.get("/portal/certificate/dcc.png")
    assert png.content.startswith(b"\x89PNG")
    assert browser_client.get("/portal/certificate/ddcc.json").status_code == 404  # not offered by the portal


def test_a_served_portal_draws_the_pdf_in_the_pdf_process(web, two_people, browser_client, sms):
    """As `vaxhub serve` does (vaxhub.hub.asgi), in the browser client's event loop."""
    an, _ = two_people
    pdfs = web.app.state.certificates.pdfs
    browser_client.portal.call(pdfs.start)
    try:
        record = portal_sign_in(browser_client, sms, "Nguyễn Văn An", "1990-03-04", "0912345678")
        browser_client.post("/portal/certificate", data={"csrf": csrf_token(record.text)}, follow_redirects=False)
        pdf = browser_client.get("/portal/certificate/certificate.pdf")
        other = browser_client.get("/portal/certificate/ddcc.json")
        drawn = pdfs.drawn_in_child
    finally:
        browser_client.portal.call(pdfs.stop)
    assert pdf.status_code == 200 and "attachment" in pdf.headers["content-disposition"]
    assert "Nguyễn Văn An" in PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
    assert drawn == 1
    assert other.status_code == 404 and "text/html" in other.headers["content-type"]
    events, _ = web.app.state.audit.search(patient=an, action="read")
    assert any("certificate.pdf from the citizen portal" in (e.get("outcomeDesc") or "") for e in events)


def test_certificate_is_refused_clearly_before_the_identity_is_verified(web, browser_client, sms):
    web.person(AN, [("208", "2021-08-02")], phone="0912345678")
    record = portal_sign_in(browser_client, sms, "Nguyễn Văn An", "1990-03-04", "0912345678")
    assert 'id="issue"' not in record.text  # the page explains instead of offering the button
    refused = browser_client.post("/portal/certificate", data={"csrf": csrf_token(record.text)})
    assert refused.status_code == 422
    assert "identity is not verified" in refused.text


def test_every_portal_read_leaves_an_audit_event_naming_the_citizen(web, two_people, browser_client, sms):
    an, _ = two_people
    trail = web.app.state.audit

    def events() -> list[dict]:  # the reads; the sign-in itself is a login event (tests/integration/observability)
        return [e for e in trail.search(patient=an, count=200)[0] if e["type"]["code"] != "110114"]

    before = len(events())
    record = portal_sign_in(browser_client, sms, "Nguyễn Văn An", "1990-03-04", "0912345678")
    after_view = events()
    assert len(after_view) == before + 1
    viewed = after_view[0]
    assert viewed["agent"][0]["who"] == {"reference": f"Patient/{an}"}
    assert viewed["extension"][0]["valueString"].startswith("GET /portal/record")
    assert sum(1 for e in viewed["entity"] if e["what"]["reference"].startswith("Immunization/")) == 2
    browser_client.post("/portal/certificate", data={"csrf": csrf_token(record.text)}, follow_redirects=False)  # audited by the issuer
    browser_client.get("/portal/certificate/dcc.png")
    form = csrf_token(browser_client.get("/portal/correction").text)
    browser_client.post("/portal/correction", data={"csrf": form, "focus": f"Patient/{an}", "description": "Tên đệm là Văn"})
    paths = [e["extension"][0]["valueString"].split()[1] for e in events()[: len(events()) - len(after_view)]]
    assert sorted(paths) == sorted(["/portal/certificate", "/portal/certificate/dcc.png", "/portal/correction", "/portal/correction"])
    assert all(e["agent"][0]["who"] == {"reference": f"Patient/{an}"} for e in events()[:4])


def test_correction_is_stored_as_a_fhir_task_for_the_site(web, two_people, browser_client, sms):
    an, _ = two_people
    portal_sign_in(browser_client, sms, "Nguyễn Văn An", "1990-03-04", "0912345678")
    page = browser_client.get("/portal/correction")
    dose = re.search(r'value="(Immunization/[^"]+)"', page.text).group(1)
    filed = browser_client.post("/portal/correction", data={"csrf": csrf_token(page.text), "focus": dose, "description": "Mũi 2 tiêm ngày 24/8"})
    assert filed.status_code == 201
    task_id = re.search(r'id="correction-filed">[^<]*?([0-9a-f-]{16,})', filed.text).group(1)
    task = web.app.state.store.read("Task", task_id).content
    assert task["status"] == "requested" and task["code"]["coding"][0]["code"] == "change"
    assert task["focus"] == {"reference": dose} and task["for"] == {"reference": f"Patient/{an}"}
    assert task["description"] == "Mũi 2 tiêm ngày 24/8"


@pytest.mark.parametrize("description", ["", "   ", "x" * 2001])
def test_an_empty_or_too_long_correction_is_refused_with_the_form_again(web, two_people, browser_client, sms, description):
    an, _ = two_people
    portal_sign_in(browser_client, sms, "Nguyễn Văn An", "1990-03-04", "0912345678")
    form = csrf_token(browser_client.get("/portal/correction").text)
    refused = browser_client.post("/portal/correction", data={"csrf": form, "focus": f"Patient/{an}", "description": description})
    assert refused.status_code == 400 and 'name="description"' in refused.text


def test_sign_out_ends_the_session(web, two_people, browser_client, sms):
    record = portal_sign_in(browser_client, sms, "Nguyễn Văn An", "1990-03-04", "0912345678")
    out = browser_client.post("/portal/sign-out", data={"csrf": csrf_token(record.text)}, follow_redirects=False)
    assert out.status_code == 303
    assert browser_client.get("/portal/record", follow_redirects=False).headers["location"] == "/portal"


def test_the_phone_must_be_on_record_for_that_person(web, two_people, browser_client, sms):
    _lookup(browser_client, name="Phạm Thu Hương", birth_date="1985-11-20", phone="0912345678")  # An's phone
    assert sms.messages == []
    assert HUONG.full_name  # the person exists; the answer above was the same as for anyone
