"""A citizen without the app: looks up their record, signs in with the code
sent by SMS, sees their doses and colour, gets and downloads the certificate."""

from __future__ import annotations

import io
import re
from pathlib import Path

import zxingcpp
from PIL import Image
from playwright.sync_api import expect
from pypdf import PdfReader

from tests.e2e.browser import screenshot


def test_citizen_signs_in_with_a_code_and_downloads_the_certificate(page, live, tmp_path: Path):
    page.goto(live.url("/portal"))
    expect(page.locator("h1")).to_have_text("Tra cứu thông tin tiêm chủng")
    page.fill("#name", "Nguyễn Văn An")
    page.fill("#birth_date", "1990-03-04")
    page.fill("#phone", "0912 345 678")
    screenshot(page, "portal-lookup")
    page.click("button[type=submit]")
    page.wait_for_url("**/portal/code")
    code = re.search(r"\d{6}", live.sms.last_to("+84912345678")).group(0)
    page.fill("#code", code)
    screenshot(page, "portal-code")
    page.click("button[type=submit]")
    page.wait_for_url("**/portal/record")

    expect(page.locator("#status")).to_have_attribute("data-colour", "green")
    expect(page.locator("#doses .dose")).to_have_count(2)
    expect(page.locator("#doses")).to_contain_text("2/8/2021")
    page.click("#issue")
    page.wait_for_url("**/portal/record#certificate")
    expect(page.locator("img.qr")).to_be_visible()
    expect(page.locator("img.qr")).to_have_js_property("complete", True)
    screenshot(page, "portal-record")

    with page.expect_download() as pdf_download:
        page.click("#download-pdf")
    pdf = tmp_path / "certificate.pdf"
    pdf_download.value.save_as(pdf)
    text = "".join(p.extract_text() for p in PdfReader(pdf).pages)
    assert "Nguyễn Văn An" in text

    with page.expect_download() as png_download:
        page.click("#download-png")
    png = tmp_path / "certificate.png"
    png_download.value.save_as(png)
    codes = zxingcpp.read_barcodes(Image.open(io.BytesIO(png.read_bytes())))
    assert codes and codes[0].text.startswith("HC1:")
    report = live.web.app.state.certificates.verify(codes[0].text)
    assert report.valid and report.payload["nam"]["gn"] == "Văn An"
