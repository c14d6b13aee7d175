"""Drawn downloads are kept per issuance: the second request for a QR image
is served from the cache, a different UVCI is drawn anew, and the cache
stays within its size."""

from __future__ import annotations

import datetime as dt
import io

import zxingcpp
from PIL import Image

from vaxhub.certificates.dcc import issue_dcc
from vaxhub.hub.certificates.downloads import RenderCache, StoredCertificate, render_download


def _stored(uvci: str, hc1: str) -> StoredCertificate:
    moment = dt.datetime(2026, 1, 1)
    return StoredCertificate(
        uvci=uvci, patient_id="p1", issued_at=moment, expires_at=moment, status="valid", dose_number=2, total_doses=2,
        revoked=False, revocation_reason=None, identity_override=None, details={}, artefacts={"dcc": hc1}, kids={},
    )


def test_a_drawn_qr_is_served_from_the_cache_and_keyed_by_issuance(holder, second_dose, es256_signer, now):
    hc1 = issue_dcc(holder, second_dose, es256_signer, issued_at=now)
    cache = RenderCache(entries=2)
    first, media_type = render_download(_stored("URN:UVCI:01:VN:A", hc1), "dcc.png", cache=cache)
    again, _ = render_download(_stored("URN:UVCI:01:VN:A", hc1), "dcc.png", cache=cache)
    assert media_type == "image/png" and again is first and cache.hits == 1
    decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(first)))
    assert [d.text for d in decoded] == [hc1]

    render_download(_stored("URN:UVCI:01:VN:B", hc1), "dcc.png", cache=cache)
    render_download(_stored("URN:UVCI:01:VN:C", hc1), "dcc.png", cache=cache)
    assert cache.hits == 1  # new issuances are drawn, not served
    assert cache.get(("URN:UVCI:01:VN:A", "dcc.png")) is None  # the oldest left when the third came in


def test_text_downloads_are_not_kept(holder, second_dose, es256_signer, now):
    hc1 = issue_dcc(holder, second_dose, es256_signer, issued_at=now)
    cache = RenderCache()
    body, _ = render_download(_stored("URN:UVCI:01:VN:A", hc1), "dcc.txt", cache=cache)
    assert body == hc1.encode() and cache.get(("URN:UVCI:01:VN:A", "dcc.txt")) is None
