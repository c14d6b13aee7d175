"""A printable vaccination certificate: one A4 page in Vietnamese and English
with the holder, the doses, the certificate colour and the EU DCC QR code.

Rendered with fpdf2 and the DejaVu Sans font shipped in `fonts/` (its licence
beside it), embedded and subset: the PDF core fonts have no Vietnamese
letters ("Nguy■n V■n ■■c"). `pdf_fonts` picks the files: cut down to Latin
and Vietnamese once per process when the document needs no other letter.
The QR image is the `HC1:` code at a scale a phone camera or a PDF-to-image
step reads back (HCERT §4, ECC level Q).
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace

from vaxhub.certificates.dcc import render_hc1_png
from vaxhub.certificates.pdf_fonts import font_files

FONT_FAMILY = "DejaVuSans"
_GREEN = (22, 128, 61)
_YELLOW = (234, 179, 8)
_INK = (17, 24, 39)
_MUTED = (75, 85, 99)
VIETNAM_TZ = dt.timezone(dt.timedelta(hours=7))


@dataclass(frozen=True)
class PdfDose:
    number: int
    date: dt.date
    vaccine: str
    lot: str | None = None
    place: str | None = None


@dataclass(frozen=True)
class CertificateDocument:
    """What the page shows. `birth_date` is a FHIR date (YYYY, YYYY-MM or
    YYYY-MM-DD); `complete` says whether the primary series is complete (green)."""

    full_name: str
    name_icao: str
    birth_date: str
    doses: Sequence[PdfDose]
    complete: bool
    certificate_id: str
    issuer: str
    issued_at: dt.datetime
    expires_at: dt.datetime
    qr_text: str
    identifier: str | None = None
    qr_png: bytes | None = None  # `render_hc1_png(qr_text)` when already drawn (the `dcc.png` download)


def _day(value: dt.date | dt.datetime) -> str:
    if isinstance(value, dt.datetime):
        value = value.astimezone(VIETNAM_TZ).date()
    return value.strftime("%d/%m/%Y")


def _birth_date(value: str) -> str:
    """Vietnamese order (dd/mm/yyyy) for the precision given."""
    parts = value.split("-")
    return "/".join(reversed(parts)) if value else "—"


class _Page(FPDF):
    def __init__(self, fonts: dict[str, Path]) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        for style, path in fonts.items():
            self.add_font(FONT_FAMILY, style, path)
        for font in self.fonts.values():
            # fpdf2 cuts each font to the glyphs drawn and saves the cut; by
            # default fontTools then recomputes every glyph's bounding box,
            # decompiling and recompiling each one (a quarter of a PDF's CPU).
            # A cut leaves glyphs as they are, so the boxes stored are right.
            font.ttfont.recalcBBoxes = False
        self.set_auto_page_break(auto=False)
        self.set_margins(18, 16, 18)

    def text_line(self, text: str, *, size: float = 10, bold: bool = False, colour=_INK, height: float = 6, align: str = "L") -> None:
        self.set_font(FONT_FAMILY, "B" if bold else "", size)
        self.set_text_color(*colour)
        self.cell(0, height, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT, align=align)

    def field(self, label: str, value: str) -> None:
        self.set_font(FONT_FAMILY, "", 8.5)
        self.set_text_color(*_MUTED)
        self.cell(0, 4.5, label, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font(FONT_FAMILY, "B", 12)
        self.set_text_color(*_INK)
        self.cell(0, 7, value, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _variable_text(d: CertificateDocument) -> str:
    """Every character the page may show besides its own fixed labels."""
    doses = (f"{x.vaccine}{x.lot or ''}{x.place or ''}" for x in d.doses)
    return "".join((d.full_name, d.name_icao, d.birth_date, d.identifier or "", d.certificate_id, d.issuer, *doses))


def render_certificate_pdf(document: CertificateDocument) -> bytes:
    """The certificate as PDF bytes (one A4 page)."""
    d = document
    pdf = _Page(font_files(_variable_text(d)))
    pdf.set_title("Chứng nhận tiêm chủng COVID-19 / COVID-19 vaccination certificate")
    pdf.set_author(d.issuer)
    pdf.set_lang("vi")
    pdf.set_creation_date(d.issued_at)
    pdf.add_page()

    pdf.text_line("CỘNG HOÀ XÃ HỘI CHỦ NGHĨA VIỆT NAM", size=9, bold=True, align="C", height=5)
    pdf.text_line("SOCIALIST REPUBLIC OF VIET NAM", size=8, colour=_MUTED, align="C", height=5)
    pdf.ln(3)
    pdf.text_line("CHỨNG NHẬN TIÊM CHỦNG COVID-19", size=17, bold=True, align="C", height=9)
    pdf.text_line("COVID-19 VACCINATION CERTIFICATE", size=11, colour=_MUTED, align="C", height=6)
    pdf.ln(3)

    colour = _GREEN if d.complete else _YELLOW
    status = (
        "ĐÃ TIÊM ĐỦ LIỀU CƠ BẢN — PRIMARY SERIES COMPLETE"
        if d.complete
        else "CHƯA TIÊM ĐỦ LIỀU CƠ BẢN — PRIMARY SERIES NOT COMPLETE"
    )
    pdf.set_fill_color(*colour)
    pdf.set_text_color(255, 255, 255) if d.complete else pdf.set_text_color(*_INK)
    pdf.set_font(FONT_FAMILY, "B", 11)
    pdf.cell(0, 9, status, fill=True, align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_fill_color(255, 255, 255)
    pdf.ln(5)

    top = pdf.get_y()
    qr_size = 62
    qr_x = pdf.w - pdf.r_margin - qr_size
    pdf.image(io.BytesIO(d.qr_png or render_hc1_png(d.qr_text, scale=4)), x=qr_x, y=top, w=qr_size, h=qr_size, alt_text="EU DCC QR code")
    pdf.set_right_margin(pdf.r_margin + qr_size + 6)
    pdf.field("Họ và tên / Full name", d.full_name)
    pdf.field("Tên không dấu (ICAO 9303) / Transliterated name", d.name_icao.replace("<", " "))
    pdf.field("Ngày sinh / Date of birth", _birth_date(d.birth_date))
    if d.identifier:
        pdf.field("Số định danh cá nhân / Personal ID", d.identifier)
    pdf.set_right_margin(18)
    pdf.set_y(max(pdf.get_y(), top + qr_size) + 6)

    pdf.text_line("Các mũi đã tiêm / Doses received", size=11, bold=True, height=7)
    pdf.set_font(FONT_FAMILY, "", 9)
    pdf.set_text_color(*_INK)
    headings = FontFace(emphasis="BOLD", color=_INK, fill_color=(229, 231, 235))
    with pdf.table(col_widths=(14, 26, 54, 30, 50), text_align="LEFT", line_height=6, headings_style=headings) as table:
        header = table.row()
        for title in ("Mũi / Dose", "Ngày / Date", "Vắc xin / Vaccine", "Số lô / Lot", "Nơi tiêm / Place"):
            header.cell(title)
        for dose in d.doses:
            row = table.row()
            row.cell(str(dose.number))
            row.cell(_day(dose.date))
            row.cell(dose.vaccine)
            row.cell(dose.lot or "—")
            row.cell(dose.place or "—")
    pdf.ln(6)

    pdf.text_line("Mã chứng nhận / Certificate identifier (UVCI)", size=8.5, colour=_MUTED, height=4.5)
    pdf.text_line(d.certificate_id, size=9, height=5)
    pdf.ln(2)
    pdf.text_line(f"Cấp ngày / Issued: {_day(d.issued_at)}    Có giá trị đến / Valid until: {_day(d.expires_at)}", size=9)
    pdf.text_line(f"Cơ quan cấp / Issuer: {d.issuer}", size=9)
    pdf.ln(2)
    pdf.text_line(
        "Quét mã QR để xác thực (EU DCC) / Scan the QR code to verify (EU Digital COVID Certificate)",
        size=8, colour=_MUTED,
    )
    return bytes(pdf.output())
