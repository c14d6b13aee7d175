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


def _vietnamese_letters() -> str:
    """Every letter of the Vietnamese alphabet with every tone mark, both cases."""
    import unicodedata

    tones = ("", "\u0300", "\u0301", "\u0303", "\u0309", "\u0323")
    vowels = "aăâeêioôơuưy"
    letters = "".join(unicodedata.normalize("NFC", v + t) for v in vowels for t in tones) + "bcdđghklmnpqrstvx"
    return letters + letters.upper()


def test_the_cut_fonts_hold_every_vietnamese_letter_and_far_fewer_glyphs():
    from fontTools import ttLib

    from vaxhub.certificates.pdf_fonts import font_files

    letters = _vietnamese_letters()
    assert len(letters) == 2 * (12 * 6 + 17)
    cut, full = font_files(letters), font_files("Иван")
    for style in ("", "B"):
        cut_font, full_font = ttLib.TTFont(cut[style]), ttLib.TTFont(full[style])
        cmap = cut_font.getBestCmap()
        assert [c for c in letters + "—–“”‘’…₫" if ord(c) not in cmap] == []
        assert len(cut_font.getGlyphOrder()) * 5 < len(full_font.getGlyphOrder())


def test_a_name_beyond_the_cut_fonts_is_drawn_with_the_full_fonts(document):
    from dataclasses import replace

    pdf = render_certificate_pdf(replace(document, full_name="Иван Петров", issuer="Bộ Y tế"))
    text = PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    assert "Иван Петров" in text and "Bộ Y tế" in text


def test_the_fixed_labels_are_drawn_whole_with_the_cut_fonts(document, monkeypatch):
    from vaxhub.certificates import pdf as module

    chosen = []
    real = module.font_files

    def watched(text):  # noqa: ANN001, ANN202
        chosen.append(real(text))
        return chosen[-1]

    monkeypatch.setattr(module, "font_files", watched)
    text = PdfReader(io.BytesIO(render_certificate_pdf(document))).pages[0].extract_text()
    assert chosen == [real("Đặng")] and chosen[0] != real("Иван")
    for label in ("CỘNG HOÀ XÃ HỘI CHỦ NGHĨA VIỆT NAM", "Các mũi đã tiêm / Doses received", "Nơi tiêm / Place",
                  "Tên không dấu (ICAO 9303) / Transliterated name", "Quét mã QR để xác thực (EU DCC)", "Có giá trị đến / Valid until"):
        assert label in text, label


def test_font_folders_of_processes_that_are_gone_are_removed_and_live_ones_kept(tmp_path):
    import os
    import subprocess
    import sys

    from vaxhub.certificates.pdf_fonts import PREFIX, sweep_left_behind

    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    gone = tmp_path / f"{PREFIX}{ended.stdout.strip()}-abc"  # a killed worker's folder
    mine = tmp_path / f"{PREFIX}{os.getpid()}-def"
    other = tmp_path / "vaxhub-something-else"
    for folder in (gone, mine, other):
        folder.mkdir()
        (folder / "DejaVuSans.ttf").write_bytes(b"cut")
    assert sweep_left_behind(tmp_path) == 1
    assert not gone.exists() and mine.exists() and other.exists()


def _embedded_fonts(pdf: bytes) -> list:
    """Each font file embedded in the PDF, opened with fontTools."""
    from fontTools import ttLib

    fonts = []
    for font in PdfReader(io.BytesIO(pdf)).pages[0]["/Resources"]["/Font"].values():
        descendant = font.get_object()["/DescendantFonts"][0].get_object()
        data = descendant["/FontDescriptor"]["/FontFile2"].get_object().get_data()
        fonts.append(ttLib.TTFont(io.BytesIO(data)))
    return fonts


@pytest.mark.parametrize("full_name", ["Đặng Thị Ngọc Hà", "Иван Петров"], ids=["cut fonts", "full fonts"])
def test_every_embedded_glyph_keeps_the_box_of_the_font_it_came_from(document, full_name):
    """fpdf2 is told not to recompute boxes when it cuts a font to the glyphs
    drawn: each glyph must keep the box its source file gives it, and the
    font's box must still hold them all."""
    from dataclasses import replace

    from fontTools import ttLib

    from vaxhub.certificates.pdf_fonts import font_files

    sources = {style: ttLib.TTFont(path) for style, path in font_files(full_name).items()}
    fonts = _embedded_fonts(render_certificate_pdf(replace(document, full_name=full_name)))
    assert sorted(f["OS/2"].usWeightClass >= 600 for f in fonts) == [False, True]
    for font in fonts:
        source = sources["B" if font["OS/2"].usWeightClass >= 600 else ""]
        source_names, source_glyf = source.getBestCmap(), source["glyf"]
        glyf, head = font["glyf"], font["head"]
        drawn = {c: name for c, name in font.getBestCmap().items() if glyf[name].numberOfContours != 0}
        assert len(drawn) > 20
        for character, name in drawn.items():
            box = (glyf[name].xMin, glyf[name].yMin, glyf[name].xMax, glyf[name].yMax)
            was = source_glyf[source_names[character]]
            assert box == (was.xMin, was.yMin, was.xMax, was.yMax), chr(character)
            assert head.xMin <= box[0] and head.yMin <= box[1] and box[2] <= head.xMax and box[3] <= head.yMax, chr(character)


def test_the_cut_fonts_embed_without_hinting_or_layout_tables(document):
    """Both are dead weight in the PDF; without them a certificate is about
    two-thirds the size (36 kB with the instructions)."""
    pdf = render_certificate_pdf(document)
    for font in _embedded_fonts(pdf):
        assert not {"fpgm", "prep", "cvt ", "GSUB", "GPOS", "GDEF"} & set(font.keys())
        glyf = font["glyf"]
        assert all(not getattr(glyf[name], "program", None) or not glyf[name].program.getBytecode() for name in font.getGlyphOrder())
    assert len(pdf) < 28_000
