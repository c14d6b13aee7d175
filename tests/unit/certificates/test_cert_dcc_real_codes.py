"""Decoding the real EU DCC QR codes of the dcc-quality-assurance set
(`../shared/data/dcc-quality-assurance`, one folder per issuing country).

The issuers' signing keys are not shipped, so these check decoding, the
COSE/CWT structure and the schema fields, not signatures. The PNGs are read
with zxing-cpp (`pip install zxing-cpp`); without it, or without the data,
the tests are skipped with the reason."""

from __future__ import annotations

import functools
import os
import re
import warnings
from pathlib import Path

import pytest

from vaxhub.certificates.dcc import decode_hc1, transliterate_icao
from vaxhub.certificates.status import CertificateColour, colour_for_dcc_entry

SHARED_DATA = Path(os.environ.get("VAXHUB_SHARED_DATA") or Path(__file__).resolve().parents[3].parent / "shared" / "data")
QA = SHARED_DATA / "dcc-quality-assurance"
VACCINATION_FIELDS = ("tg", "vp", "mp", "ma", "dn", "sd", "dt", "co", "is", "ci")


def _countries() -> list[str]:
    if not QA.is_dir():
        return []
    return sorted(
        p.name
        for p in QA.iterdir()
        if p.is_dir() and re.fullmatch(r"[A-Z]{2,3}", p.name) and any(p.rglob("*.png"))
    )


@functools.lru_cache(maxsize=None)
def _read_hc1(png: Path) -> str:
    zxingcpp = pytest.importorskip("zxingcpp", reason="zxing-cpp not installed: cannot read the QR PNGs")
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # palette PNGs with transparency
        with Image.open(png) as image:
            results = zxingcpp.read_barcodes(image)
    texts = [r.text for r in results if r.text.startswith("HC1:")]  # SG's PNG holds a second, unrelated code
    assert texts, f"no HC1 QR code found in {png}"
    return texts[0]


def _check_schema(hcert: dict, special_case: bool) -> None:
    assert isinstance(hcert.get("ver"), str)
    assert isinstance(hcert.get("nam"), dict) and "fnt" in hcert["nam"]
    assert isinstance(hcert.get("dob"), str)
    kinds = [k for k in ("v", "t", "r") if hcert.get(k)]
    assert len(kinds) == 1 or (special_case and kinds), kinds
    for entry in hcert.get("v") or []:
        missing = [f for f in VACCINATION_FIELDS if entry.get(f) in (None, "")]
        assert not missing, missing
    for kind in kinds:
        assert all(isinstance(e.get("ci"), str) for e in hcert[kind])


pytestmark = pytest.mark.skipif(not QA.is_dir(), reason=f"test data absent: {QA}")


@pytest.mark.parametrize("country", _countries() or ["none"])
def test_every_code_of_a_country_decodes_with_schema_fields(country):
    pngs = sorted((QA / country).rglob("*.png"))
    assert pngs, f"no QR images for {country}"
    for png in pngs:
        decoded = decode_hc1(_read_hc1(png))
        assert decoded.kid is not None and len(decoded.kid) in (8, 16), png
        assert decoded.algorithm in ("ES256", "PS256"), png
        assert decoded.issuer_country and decoded.expires_at, png
        _check_schema(decoded.hcert, special_case="specialcases" in png.parts)


def test_vietnam_code_is_ps256_with_a_32_hex_uvci():
    decoded = decode_hc1(_read_hc1(QA / "VN" / "1.3.0" / "VAC_VN.png"))
    assert decoded.algorithm == "PS256"
    assert decoded.issuer_country == "VN"
    assert decoded.tags == (18,)
    v = decoded.hcert["v"][0]
    assert re.fullmatch(r"URN:UVCI:01:VN:[0-9A-F]{32}", v["ci"])
    assert v["tg"] == "840539006" and v["co"] == "VN"
    nam = decoded.hcert["nam"]
    assert transliterate_icao(nam["fn"]) == nam["fnt"]
    assert transliterate_icao(nam["gn"]) == nam["gnt"]
    assert colour_for_dcc_entry(v) is CertificateColour.GREEN


def test_vietnam_code_uses_error_correction_level_l():
    zxingcpp = pytest.importorskip("zxingcpp", reason="zxing-cpp not installed: cannot read the QR PNGs")
    from PIL import Image

    with Image.open(QA / "VN" / "1.3.0" / "VAC_VN.png") as image:
        (result,) = zxingcpp.read_barcodes(image)
    assert result.ec_level == "L"


def test_kid_in_unprotected_header_occurs_in_real_codes():
    found = 0
    for png in sorted(QA.rglob("*.png")):
        decoded = decode_hc1(_read_hc1(png))
        if 4 not in decoded.protected and 4 in decoded.unprotected:
            found += 1
            assert decoded.kid == decoded.unprotected[4]
    assert found > 0
