"""The public verifier page: green with only what a checker needs, red with
the reason, from pasted text or an uploaded image; bad input is a clear 4xx."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.certificate_tampering import altered_payload, card_altered_payload
from tests.web_pages import csrf_token
from vaxhub.certificates import dcc


@pytest.fixture
def issued(web, two_people) -> dict[str, str]:
    an, _ = two_people
    uvci = web.raw.post(f"/certificates/patients/{an}", headers=web.site).json()["uvci"]
    get = lambda name: web.raw.get(f"/certificates/{uvci}/{name}", headers=web.site)  # noqa: E731
    return {"hc1": get("dcc.txt").text, "png": get("dcc.png").content, "shc": get("shc.txt").text}


def _verify(client, *, qr: str | None = None, image: bytes | None = None, token: str | None = None):
    token = token if token is not None else csrf_token(client.get("/verify").text)
    files = {"image": ("qr.png", image, "image/png")} if image is not None else None
    data = {"csrf": token}
    if qr is not None:
        data["qr"] = qr
    return client.post("/verify", data=data, files=files)


def test_a_hub_certificate_uploaded_as_an_image_is_green_with_the_holder(browser_client, issued):
    page = _verify(browser_client, image=issued["png"])
    assert page.status_code == 200
    assert 'data-valid="true"' in page.text
    assert "Nguyễn Văn An" in page.text
    assert "001090012345" not in page.text  # the identity number is not a checker's business
    assert "LOT1" not in page.text and "LOT2" not in page.text


@pytest.mark.parametrize("kind", ["hc1", "shc"])
def test_pasted_text_of_either_format_is_verified(browser_client, issued, kind):
    page = _verify(browser_client, qr=issued[kind])
    assert 'data-valid="true"' in page.text and "Nguyễn Văn An" in page.text
    assert "2/2" in page.text  # dose n of m (Vietnamese)


def test_an_altered_certificate_is_red_with_the_reason(browser_client, issued):
    forged = dcc.render_hc1_png(altered_payload(issued["hc1"]))
    page = _verify(browser_client, image=forged)
    assert page.status_code == 200
    assert 'data-valid="false"' in page.text
    assert 'data-code="bad-signature"' in page.text
    card = _verify(browser_client, qr=card_altered_payload(issued["shc"]))
    assert 'data-valid="false"' in card.text and 'data-code="bad-signature"' in card.text


def test_the_verdict_is_in_english_on_request(browser_client, issued):
    browser_client.get("/verify?lang=en")
    page = _verify(browser_client, qr=issued["hc1"])
    assert "Valid" in page.text and "Dose" in page.text and "Hợp lệ" not in page.text


@pytest.mark.parametrize(
    "image",
    [b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, b""],
    ids=["text", "broken-png", "empty"],
)
def test_an_unreadable_upload_is_a_clear_400(browser_client, image):
    page = _verify(browser_client, image=image)
    assert page.status_code == 400
    assert 'data-valid="false"' in page.text


def test_an_image_without_a_qr_code_is_a_clear_400(browser_client):
    blank = io.BytesIO()
    Image.new("RGB", (200, 200), "white").save(blank, "PNG")
    page = _verify(browser_client, image=blank.getvalue())
    assert page.status_code == 400 and "no QR code" in page.text


def test_nothing_to_verify_and_garbage_text_are_answered_clearly(browser_client):
    assert _verify(browser_client).status_code == 400
    garbage = _verify(browser_client, qr="HC1:%%%garbage")
    assert garbage.status_code == 200 and 'data-valid="false"' in garbage.text and 'data-code="malformed"' in garbage.text


def test_the_verifier_form_needs_its_csrf_token(browser_client, issued):
    assert _verify(browser_client, qr=issued["hc1"], token="").status_code == 403
    assert _verify(browser_client, qr=issued["hc1"], token="f" * 64).status_code == 403


def test_each_verification_leaves_an_audit_event(web, browser_client, issued):
    before = web.app.state.audit.count()
    _verify(browser_client, qr=issued["hc1"])
    _verify(browser_client, qr=altered_payload(issued["hc1"]))
    events = web.app.state.audit.search(count=2)[0]
    assert web.app.state.audit.count() == before + 2
    assert {e["outcomeDesc"].split(": ")[-1] for e in events} == {"valid", "bad-signature"}
