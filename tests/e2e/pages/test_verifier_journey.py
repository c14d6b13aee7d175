"""A checker uploads a photo of a hub-issued QR code and sees green with the
holder's name; a forged one is red with the reason."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect

from tests.certificate_tampering import altered_payload
from tests.e2e.browser import screenshot
from vaxhub.certificates import dcc


def _upload(page, live, image: Path) -> None:
    page.goto(live.url("/verify"))
    page.set_input_files("#image", str(image))
    page.click("#check")
    page.wait_for_load_state()


def test_verifier_sees_green_for_a_hub_certificate_and_red_for_a_forged_one(page, live, tmp_path: Path):
    web = live.web
    uvci = web.raw.post(f"/certificates/patients/{live.an}", headers=web.site).json()["uvci"]
    genuine = tmp_path / "genuine.png"
    genuine.write_bytes(web.raw.get(f"/certificates/{uvci}/dcc.png", headers=web.site).content)
    hc1 = web.raw.get(f"/certificates/{uvci}/dcc.txt", headers=web.site).text
    forged = tmp_path / "forged.png"
    forged.write_bytes(dcc.render_hc1_png(altered_payload(hc1)))

    page.goto(live.url("/verify"))
    expect(page.locator("#verify-form")).to_be_visible()
    screenshot(page, "verify-start")

    _upload(page, live, genuine)
    verdict = page.locator("#verdict")
    expect(verdict).to_have_attribute("data-valid", "true")
    expect(verdict).to_have_class("card verdict verdict-valid")
    expect(page.locator("#holder")).to_have_text("Nguyễn Văn An")
    expect(verdict).to_contain_text("2/2")
    expect(verdict).not_to_contain_text("001090012345")
    screenshot(page, "verify-valid")

    _upload(page, live, forged)
    expect(verdict).to_have_attribute("data-valid", "false")
    expect(verdict).to_have_class("card verdict verdict-invalid")
    expect(page.locator("#reasons li")).to_have_attribute("data-code", "bad-signature")
    expect(page.locator("#reasons")).to_contain_text("Chữ ký số không khớp")
    screenshot(page, "verify-invalid")
