"""POST /certificates/verify: QR text in any form, or a QR image decoded on the server."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.certificate_tampering import CARD_TAMPERINGS, DCC_TAMPERINGS


@pytest.fixture
def issued(certs, an) -> dict[str, str]:
    uvci = certs.issue(an)["uvci"]
    return {name: certs.download(uvci, name) for name in ("dcc.txt", "dcc.png", "shc.txt", "shc.png")}


def _post(certs, **kwargs):
    return certs.raw.post("/certificates/verify", headers={"authorization": certs.verifier()["authorization"], **kwargs.pop("headers", {})}, **kwargs)


def test_text_json_and_images_give_the_same_report(certs, issued):
    hc1, card = issued["dcc.txt"].text, issued["shc.txt"].text
    for text, png in ((hc1, issued["dcc.png"].content), (card, issued["shc.png"].content)):
        as_json = _post(certs, json={"qr": text})
        as_text = _post(certs, content=text.encode(), headers={"content-type": "text/plain"})
        as_form = _post(certs, files={"image": ("qr.png", png, "image/png")})
        as_image = _post(certs, content=png, headers={"content-type": "image/png"})
        reports = [r.json() for r in (as_json, as_text, as_form, as_image)]
        assert all(r.status_code == 200 for r in (as_json, as_text, as_form, as_image))
        assert reports[0]["valid"] and all(r == reports[0] for r in reports)


def test_a_photo_sized_jpeg_is_read(certs, issued):
    qr = Image.open(io.BytesIO(issued["dcc.png"].content)).convert("L")
    canvas = Image.new("L", (1200, 900), 255)
    canvas.paste(qr.resize((qr.width * 2, qr.height * 2), Image.NEAREST), (300, 120))
    buffer = io.BytesIO()
    canvas.save(buffer, format="JPEG", quality=85)
    report = _post(certs, files={"image": ("photo.jpg", buffer.getvalue(), "image/jpeg")}).json()
    assert report["valid"] and report["format"] == "dcc"


TAMPERINGS = [("dcc.txt", *t) for t in DCC_TAMPERINGS] + [("shc.txt", *t) for t in CARD_TAMPERINGS]


@pytest.mark.parametrize(("source", "how", "tamper", "code"), TAMPERINGS, ids=[f"{t[0][:3]}-{t[1]}" for t in TAMPERINGS])
def test_tampered_certificates_are_reported_invalid(certs, issued, source, how, tamper, code):
    r = _post(certs, json={"qr": tamper(issued[source].text)})
    assert r.status_code == 200
    report = r.json()
    assert report["valid"] is False and code in [e["code"] for e in report["errors"]]


def test_unreadable_requests_are_4xx_not_500(certs):
    blank = io.BytesIO()
    Image.new("L", (200, 200), 255).save(blank, format="PNG")
    cases = [
        dict(files={"image": ("qr.png", blank.getvalue(), "image/png")}),
        dict(files={"image": ("qr.png", b"not an image", "image/png")}),
        dict(content=b"\x89PNG\r\n\x1a\n broken", headers={"content-type": "image/png"}),
        dict(content=b'{"qr": 5}', headers={"content-type": "application/json"}),
        dict(content=b"{not json", headers={"content-type": "application/json"}),
        dict(content=b"\xff\xfe", headers={"content-type": "text/plain"}),
        dict(content=b"HC1:" + b"A" * 70000, headers={"content-type": "text/plain"}),
        dict(content=b"x", headers={"content-type": "application/xml"}),
        dict(files={"other": ("a.txt", b"x", "text/plain")}),
    ]
    for case in cases:
        r = _post(certs, **case)
        assert 400 <= r.status_code < 500, (case, r.status_code)
        assert r.json()["resourceType"] == "OperationOutcome"


def test_garbage_text_gets_a_report(certs):
    for text in ("hello", "HC1:NCF", "shc:/12", "a.b.c"):
        r = _post(certs, json={"qr": text})
        assert r.status_code == 200 and r.json()["valid"] is False and r.json()["errors"]
