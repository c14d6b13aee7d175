"""Issuing a certificate from stored records, and every download format
through the API, read back the way a phone or a border checker would."""

from __future__ import annotations

import io
import json

import pytest
import zxingcpp
from PIL import Image
from pypdf import PdfReader

from tests.integration.certificates.conftest import DUC, HOA, HUONG
from vaxhub.certificates import shc

D1, D2, D3 = "2021-08-02T09:00:00+07:00", "2021-08-23T10:30:00+07:00", "2022-01-10T08:00:00+07:00"


def _qr(png: bytes) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))]


def _verify(certs, text: str) -> dict:
    r = certs.raw.post("/certificates/verify", json={"qr": text}, headers=certs.site)
    assert r.status_code == 200, r.text
    return r.json()


def test_issue_answers_a_summary_with_every_download(certs, an):
    body = certs.issue(an)
    assert body["uvci"].startswith("URN:UVCI:01:VN:") and body["patient"] == an
    assert (body["status"], body["dose_number"], body["total_doses"]) == ("green", 2, 2)
    assert body["revoked"] is False and body["identity_override"] is None
    assert set(body["downloads"]) == {"dcc.txt", "dcc.png", "dcc.svg", "shc.txt", "shc.png", "card.smart-health-card", "ddcc.json", "certificate.pdf"}
    listed = certs.raw.get(f"/certificates/patients/{an}", headers=certs.site).json()
    assert [c["uvci"] for c in listed["certificates"]] == [body["uvci"]]


def test_eu_dcc_text_png_and_svg(certs, an):
    uvci = certs.issue(an)["uvci"]
    hc1 = certs.download(uvci, "dcc.txt").text
    report = _verify(certs, hc1)
    assert report["valid"] and report["format"] == "dcc" and report["certificate_id"] == uvci
    assert report["payload"]["nam"] == {"fn": "Nguyễn", "fnt": "NGUYEN", "gn": "Văn An", "gnt": "VAN<AN"}
    entry = report["payload"]["v"][0]
    assert (entry["mp"], entry["ma"], entry["vp"], entry["dn"], entry["sd"], entry["dt"]) == (
        "EU/1/20/1528", "ORG-100030215", "1119349007", 2, 2, "2021-08-23"
    )
    png = certs.download(uvci, "dcc.png")
    assert png.headers["content-type"] == "image/png" and png.headers["cache-control"] == "no-store"
    assert _qr(png.content) == [hc1]
    assert certs.download(uvci, "dcc.svg").text.startswith("<svg")


def test_smart_health_card_qr_png_and_file(certs, an):
    uvci = certs.issue(an)["uvci"]
    qr = certs.download(uvci, "shc.txt").text
    assert qr.startswith("shc:/") and shc.qr_version(qr) <= 22
    report = _verify(certs, qr)
    assert report["valid"] and report["format"] == "shc" and report["issuer"] == "http://testserver/shc"
    entries = report["payload"]["vc"]["credentialSubject"]["fhirBundle"]["entry"]
    assert entries[0]["resource"]["name"] == [{"family": "Nguyễn", "given": ["Văn", "An"]}]
    assert [e["resource"]["vaccineCode"]["coding"][0]["code"] for e in entries[1:]] == ["208", "208"]
    assert _qr(certs.download(uvci, "shc.png").content) == [qr]
    card = certs.download(uvci, "card.smart-health-card")
    assert card.headers["content-type"].startswith("application/smart-health-card")
    assert card.headers["content-disposition"].startswith("attachment")
    assert json.loads(card.content) == {"verifiableCredential": [shc.decode_numeric(qr)]}


def test_ddcc_bundle_is_valid_fhir_and_names_the_uvci(certs, an):
    from fhir.resources.R4B.bundle import Bundle

    uvci = certs.issue(an)["uvci"]
    bundle = certs.download(uvci, "ddcc.json").json()
    Bundle.model_validate(bundle)
    assert bundle["identifier"]["value"] == uvci
    patient, immunization, issuer = (e["resource"] for e in bundle["entry"])
    assert patient["name"] == [{"text": "Nguyễn Văn An"}] and patient["identifier"][0]["value"] == "001090012345"
    assert immunization["vaccineCode"]["coding"][0]["code"] == "XM0GQ8"
    assert immunization["protocolApplied"][0] == {
        "targetDisease": [{"coding": [{"system": "http://id.who.int/icd11/mms", "code": "RA01"}]}],
        "doseNumberPositiveInt": 2, "seriesDosesPositiveInt": 2,
    }
    assert issuer["name"] == "Ministry of Health of Viet Nam"


def test_pdf_shows_the_vietnamese_name_and_carries_the_same_qr(certs, an):
    uvci = certs.issue(an)["uvci"]
    hc1 = certs.download(uvci, "dcc.txt").text
    pdf = certs.download(uvci, "certificate.pdf")
    assert pdf.headers["content-type"] == "application/pdf"
    page = PdfReader(io.BytesIO(pdf.content)).pages[0]
    text = page.extract_text()
    assert "Nguyễn Văn An" in text and "04/03/1990" in text and "Trạm y tế phường Láng Hạ" in text
    (image,) = page.images
    assert [r.text for r in zxingcpp.read_barcodes(image.image)] == [hc1]


@pytest.mark.parametrize(
    ("citizen", "doses", "colour", "dn", "sd"),
    [
        (HUONG, [("208", D1)], "yellow", 1, 2),
        (HUONG, [("208", D1), ("208", D2)], "green", 2, 2),
        (DUC, [("212", D1)], "green", 1, 1),  # Janssen: one dose completes the series
        (HOA, [("210", D1), ("210", D2), ("208", D3)], "green", 3, 3),  # a booster
        (HUONG, [("ABDALA", D1), ("ABDALA", D2)], "yellow", 2, 3),
    ],
    ids=["one-dose-yellow", "two-doses-green", "janssen-green", "booster", "abdala-two-of-three"],
)
def test_colour_and_dose_numbers(certs, citizen, doses, colour, dn, sd):
    pid = certs.person(citizen, doses)
    certs.verify_identities()
    body = certs.issue(pid)
    assert (body["status"], body["dose_number"], body["total_doses"]) == (colour, dn, sd)
    report = _verify(certs, certs.download(body["uvci"], "dcc.txt").text)
    assert report["valid"] and (report["payload"]["v"][0]["dn"], report["payload"]["v"][0]["sd"]) == (dn, sd)
    assert _verify(certs, certs.download(body["uvci"], "shc.txt").text)["valid"]


def test_issuance_is_audited_in_its_transaction(certs, an):
    body = certs.issue(an)
    events, _ = certs.app.state.audit.search(patient=an, action="issue-certificate")
    (event,) = events
    assert event["outcome"] == "0" and event["action"] == "C"
    assert body["uvci"] in event["outcomeDesc"]
    touched = {e["what"]["reference"].split("/_history")[0] for e in event["entity"] if "what" in e}
    assert f"Patient/{an}" in touched and sum(t.startswith("Immunization/") for t in touched) == 2
    assert event["agent"][0]["who"]["identifier"]["value"] == "site-79001"


def test_downloads_are_audited_as_reads(certs, an):
    uvci = certs.issue(an)["uvci"]
    certs.download(uvci, "dcc.png")
    events, _ = certs.app.state.audit.search(patient=an, action="read")
    assert any("dcc.png" in (e.get("outcomeDesc") or "") for e in events)


def test_nothing_to_certify_stores_nothing(certs):
    pid = certs.person(HUONG, [("208", D1)], status="not-done")
    certs.verify_identities()
    r = certs.raw.post(f"/certificates/patients/{pid}", headers=certs.site)
    assert r.status_code == 422 and r.json()["issue"][0]["code"] == "business-rule"
    assert certs.raw.get(f"/certificates/patients/{pid}", headers=certs.site).json()["certificates"] == []
    events, _ = certs.app.state.audit.search(patient=pid, action="issue-certificate")
    assert [e["outcome"] for e in events] == ["4"]


def test_unknown_patient_is_404(certs):
    r = certs.raw.post("/certificates/patients/no-such-patient", headers=certs.site)
    assert r.status_code == 404 and r.json()["resourceType"] == "OperationOutcome"


def test_latest_download_follows_the_newest_issuance(certs, an):
    first = certs.issue(an)["uvci"]
    second = certs.issue(an)["uvci"]
    assert first != second
    latest = certs.raw.get(f"/certificates/patients/{an}/latest/dcc.txt", headers=certs.site)
    assert latest.status_code == 200
    assert _verify(certs, latest.text)["certificate_id"] == second
    assert certs.raw.get(f"/certificates/{first}/nonsense.bin", headers=certs.site).status_code == 404


def test_a_certificate_counts_the_doses_of_every_record_linked_to_the_person(certs):
    """Dose 1 at one site, dose 2 at another that recorded the person without
    their CCCD: once the master patient index links the records, either
    record's certificate is green 2/2."""
    from vaxhub.hub.mpi.worker import LinkWorker

    first = certs.person(DUC, [("208", "2021-08-02")], phone="0912345001")
    family, *given = DUC.full_name.split(" ")
    elsewhere = {
        "resourceType": "Patient",
        "name": [{"family": family, "given": given}],
        "gender": DUC.sex,
        "birthDate": DUC.birth_date,
        "telecom": [{"system": "phone", "value": "0912345001"}],
    }
    national = certs.login("provincial-loader", "system/*.cruds")
    second = certs.raw.post("/fhir/Patient", json=elsewhere, headers=national).json()["id"]
    dose = {"resourceType": "Immunization", "status": "completed", "patient": {"reference": f"Patient/{second}"},
            "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "208"}]},
            "occurrenceDateTime": "2021-09-06", "lotNumber": "LOT2"}
    assert certs.raw.post("/fhir/Immunization", json=dose, headers=national).status_code == 201
    certs.verify_identities()
    assert certs.issue(first)["dose_number"] == 1  # not linked yet: the first record alone

    LinkWorker(certs.app.state.mpi, backoff_seconds=0).run(until_idle=True)
    for pid in (first, second):
        body = certs.issue(pid, headers=certs.operator(), override_reason="second site's record has no CCCD") if pid == second else certs.issue(pid)
        assert (body["status"], body["dose_number"], body["total_doses"]) == ("green", 2, 2), pid


def test_a_served_process_draws_the_pdf_in_its_pdf_process_and_keeps_it(certs, an):
    """`vaxhub serve` starts each API process's PDF process (vaxhub.hub.asgi);
    here it is started in the test app's event loop the same way."""
    pdfs = certs.app.state.certificates.pdfs
    certs.raw.portal.call(pdfs.start)
    try:
        uvci = certs.issue(an)["uvci"]
        hc1 = certs.download(uvci, "dcc.txt").text
        first = certs.download(uvci, "certificate.pdf")
        latest = certs.raw.get(f"/certificates/patients/{an}/latest/certificate.pdf", headers=certs.site)
        missing = certs.raw.get(f"/certificates/{uvci}x/certificate.pdf", headers=certs.site)
        drawn = pdfs.drawn_in_child
    finally:
        certs.raw.portal.call(pdfs.stop)
    assert drawn == 1, "drawn once, in the PDF process; the second download is the kept drawing"
    assert latest.status_code == 200 and latest.content == first.content
    assert missing.status_code == 404 and missing.json()["resourceType"] == "OperationOutcome"
    page = PdfReader(io.BytesIO(first.content)).pages[0]
    assert "Nguyễn Văn An" in page.extract_text()
    (image,) = page.images
    assert [r.text for r in zxingcpp.read_barcodes(image.image)] == [hc1]
    events, _ = certs.app.state.audit.search(patient=an, action="read")
    assert sum("certificate.pdf" in (e.get("outcomeDesc") or "") for e in events) == 2
