"""The PDF certificate: Vietnamese text survives, the QR reads back."""

from __future__ import annotations

import datetime as dt
import io

import pytest
import zxingcpp
from pypdf import PdfReader

from vaxhub.certificates.dcc import issue_dcc
from vaxhub.certificates.pdf import CertificateDocument, PdfDose, render_certificate_pdf


@pytest.fixture
def document(holder, second_dose, es256_signer, now) -> CertificateDocument:
    hc1 = issue_dcc(holder, second_dose, es256_signer, issued_at=now)
    return CertificateDocument(
        full_name="Đặng Thị Ngọc Hà",
        name_icao="DANG<THI<NGOC<HA",
        birth_date="1990-05-24",
        identifier="001190012345",
        doses=[
            PdfDose(1, dt.date(2021, 8, 2), "Vaxzevria (AstraZeneca)", "ABV5300", "Bệnh viện Bạch Mai"),
            PdfDose(2, dt.date(2021, 11, 3), "Comirnaty (Pfizer-BioNTech)", "FK5618", "Trạm y tế phường Láng Hạ"),
        ],
        complete=True,
        certificate_id=second_dose.certificate_id,
        issuer="Bộ Y tế / Ministry of Health of Viet Nam",
        issued_at=now,
        expires_at=now + dt.timedelta(days=365),
        qr_text=hc1,
    )


def test_vietnamese_text_is_extracted_intact(document):
    page = PdfReader(io.BytesIO(render_certificate_pdf(document))).pages[0]
    text = page.extract_text()
    for expected in ("Đặng Thị Ngọc Hà", "CHỨNG NHẬN TIÊM CHỦNG COVID-19", "COVID-19 VACCINATION CERTIFICATE",
                     "24/05/1990", "Trạm y tế phường Láng Hạ", "Bệnh viện Bạch Mai", "DANG THI NGOC HA",
                     "ĐÃ TIÊM ĐỦ LIỀU CƠ BẢN", document.certificate_id):
        assert expected in text, expected


def test_the_font_is_embedded(document):
    pdf = render_certificate_pdf(document)
    assert b"/FontFile2" in pdf and b"DejaVuSans" in pdf
    assert b"Helvetica" not in pdf


def test_the_qr_image_reads_back_to_the_same_hc1(document):
    page = PdfReader(io.BytesIO(render_certificate_pdf(document))).pages[0]
    (image,) = page.images
    (code,) = zxingcpp.read_barcodes(image.image)
    assert code.text == document.qr_text


def test_partial_series_is_marked_not_complete(document):
    from dataclasses import replace

    text = PdfReader(io.BytesIO(render_certificate_pdf(replace(document, complete=False, birth_date="1958")))).pages[0].extract_text()
    assert "CHƯA TIÊM ĐỦ LIỀU CƠ BẢN" in text and "1958" in text
