"""Certificate PDF benchmark: CPU per PDF as the hub draws it, beside the
same page drawn the way fpdf2's documentation shows, in the same run.

Both draw `vaxhub.certificates.pdf.render_certificate_pdf` for people of a
synthetic Vietnamese population (names with diacritics, their doses and
sites), with the QR image already drawn (the hub reuses the `dcc.png`
download's). They differ only in fonts:

- hub: DejaVu Sans cut once per process to Latin and Vietnamese, without
  hinting or layout tables, and fpdf2 told to keep glyph boxes when it cuts
  each document's font to the glyphs drawn (`vaxhub/certificates/pdf_fonts.py`);
- peer: the full DejaVu Sans files, fpdf2's defaults.

Blocks of each alternate and the figures are medians over blocks (CPU time
of this process), so load elsewhere on the machine slows both alike.

    .venv/bin/python bench/pdf_drawing.py [--seconds 10] [--people 200]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from vaxhub.certificates import dcc, pdf, pdf_fonts  # noqa: E402
from vaxhub.fhir import synthetic  # noqa: E402

ISSUER = "Bộ Y tế / Ministry of Health of Viet Nam"


def documents(count: int) -> list[pdf.CertificateDocument]:
    now = dt.datetime(2022, 1, 10, tzinfo=dt.timezone.utc)
    population = synthetic.generate_population(count * 2, seed=2021)
    # One real HC1-sized text and its image: the QR is not what is measured.
    qr_text = "HC1:" + "6BFOXN*TS0BI$ZD4N9:9S6RCVN5+O30K3/XIV0W23NTDEMWK4MI6UOS03CR83KLBKAVAQ.7ZOV0C5QBDRL/+N$*3WJ8O2N7OHG4" * 5
    qr_png = dcc.render_hc1_png(qr_text)
    out = []
    for person in population.people:
        doses = population.doses_of(person)
        if not doses:
            continue
        name = person.full_name
        out.append(pdf.CertificateDocument(
            full_name=name, name_icao=dcc.transliterate_icao(name), birth_date=person.birth_date_text,
            identifier=person.cccd, complete=len(doses) >= doses[0].series_doses,
            doses=[pdf.PdfDose(d.number, d.occurred, d.vaccine.display, d.lot_number, d.site.name) for d in doses],
            certificate_id=dcc.new_uvci("VN"), issuer=ISSUER, issued_at=now, expires_at=now + dt.timedelta(days=365),
            qr_text=qr_text, qr_png=qr_png,
        ))
        if len(out) == count:
            break
    return out


class _DefaultPage(pdf._Page):
    """The page with fpdf2's own handling of fonts: boxes recomputed at output."""

    def __init__(self, fonts):  # noqa: ANN001
        super().__init__(fonts)
        for font in self.fonts.values():
            font.ttfont.recalcBBoxes = True


@contextlib.contextmanager
def fpdf2_defaults() -> Iterator[None]:
    """Draw with the full font files and fpdf2's defaults."""
    full = pdf_fonts.font_files("Ж")  # a letter beyond the cut: the full files
    saved = pdf.font_files, pdf._Page
    pdf.font_files, pdf._Page = (lambda _text: full), _DefaultPage
    try:
        yield
    finally:
        pdf.font_files, pdf._Page = saved


def _block(draw: Callable[[pdf.CertificateDocument], bytes], docs: list[pdf.CertificateDocument]) -> tuple[float, int]:
    begin = time.process_time()
    size = sum(len(draw(d)) for d in docs)
    return time.process_time() - begin, size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="CPU seconds to spend, both sides together.")
    parser.add_argument("--people", type=int, default=200)
    parser.add_argument("--block", type=int, default=10, help="PDFs per block.")
    args = parser.parse_args()

    docs = documents(args.people)
    started = time.process_time()
    pdf_fonts.prepare()
    print(f"{len(docs)} synthetic people; fonts cut in {1000 * (time.process_time() - started):.0f} ms of CPU (once per process)")

    def hub(d: pdf.CertificateDocument) -> bytes:
        return pdf.render_certificate_pdf(d)

    def peer(d: pdf.CertificateDocument) -> bytes:
        with fpdf2_defaults():
            return pdf.render_certificate_pdf(d)

    hub(docs[0])  # warm both: the first draw of each pays for imports and caches
    peer(docs[0])
    hub_ms, peer_ms, ratios, sizes, spent, at = [], [], [], {"hub": 0, "peer": 0, "n": 0}, 0.0, 0
    while spent < args.seconds or len(ratios) < 5:
        batch = [docs[(at + i) % len(docs)] for i in range(args.block)]
        at += args.block
        h, hub_bytes = _block(hub, batch)
        p, peer_bytes = _block(peer, batch)
        hub_ms.append(1000 * h / len(batch))
        peer_ms.append(1000 * p / len(batch))
        ratios.append(p / h)
        sizes["hub"] += hub_bytes
        sizes["peer"] += peer_bytes
        sizes["n"] += len(batch)
        spent += h + p
    print(f"hub:  {statistics.median(hub_ms):6.1f} ms of CPU per PDF, {sizes['hub'] / sizes['n'] / 1000:5.1f} kB")
    print(f"peer: {statistics.median(peer_ms):6.1f} ms of CPU per PDF, {sizes['peer'] / sizes['n'] / 1000:5.1f} kB (full fonts, fpdf2's defaults)")
    print(f"peer/hub: {statistics.median(ratios):.2f} (median of {len(ratios)} alternating blocks of {args.block})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
