"""Drawn downloads are kept per issuance: the second request for a QR image
is served from the cache, a different UVCI is drawn anew, and the cache
stays within its size; with Redis, what one API process drew is served by
the others, and a Redis that is down only means drawing again."""

from __future__ import annotations

import datetime as dt
import io
import uuid

import zxingcpp
from PIL import Image

from vaxhub.certificates.dcc import issue_dcc
from vaxhub.hub.certificates.downloads import SHARED_SECONDS, RedisRenders, RenderCache, StoredCertificate, render_cache, render_download


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


def test_what_one_process_drew_the_others_take_from_redis(holder, second_dose, es256_signer, now, redis_url):
    import redis

    hc1 = issue_dcc(holder, second_dose, es256_signer, issued_at=now)
    uvci = f"URN:UVCI:01:VN:{uuid.uuid4().hex[:12].upper()}"  # fresh: nothing of it is in Redis yet
    first_process, second_process = render_cache(redis_url), render_cache(redis_url)
    drawn, _ = render_download(_stored(uvci, hc1), "dcc.png", cache=first_process)
    served, media_type = render_download(_stored(uvci, hc1), "dcc.png", cache=second_process)
    assert media_type == "image/png" and served == drawn and served.startswith(b"\x89PNG")
    assert (second_process.shared_hits, second_process.hits, first_process.shared_hits) == (1, 0, 0)
    render_download(_stored(uvci, hc1), "dcc.png", cache=second_process)
    assert second_process.hits == 1  # now kept in that process too
    ttl = redis.Redis.from_url(redis_url).ttl(f"vaxhub:render:{uvci}/dcc.png")
    assert 0 < ttl <= SHARED_SECONDS


def test_a_redis_that_is_down_only_means_drawing_again(holder, second_dose, es256_signer, now):
    hc1 = issue_dcc(holder, second_dose, es256_signer, issued_at=now)
    moments = [1000.0]
    shared = RedisRenders(RedisRenders.from_url("redis://127.0.0.1:1/0").client, rest_seconds=30, clock=lambda: moments[0])
    down = RenderCache(shared=shared)
    body, _ = render_download(_stored("URN:UVCI:01:VN:DOWN", hc1), "dcc.png", cache=down)
    decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(body)))
    assert [d.text for d in decoded] == [hc1] and down.shared_hits == 0
    assert shared.failures == 1  # the read failed; the write that followed was not tried
    render_download(_stored("URN:UVCI:01:VN:DOWN2", hc1), "dcc.png", cache=down)
    assert shared.failures == 1  # Redis is left alone while it rests
    moments[0] += 31
    render_download(_stored("URN:UVCI:01:VN:DOWN3", hc1), "dcc.png", cache=down)
    assert shared.failures == 2  # and tried again after


def _with_details(cert: StoredCertificate) -> StoredCertificate:
    from dataclasses import replace

    details = {"full_name": "Đặng Thị Ngọc Hà", "name_icao": "DANG<THI<NGOC<HA", "birth_date": "1990-05-24",
               "identifier": "001190012345", "complete": False,
               "doses": [{"number": 1, "date": "2021-08-02", "vaccine": "Vaxzevria (AstraZeneca)", "lot": "ABV5300", "place": "Bệnh viện Bạch Mai"}]}
    return replace(cert, details=details)


def _pdf_qr(pdf: bytes) -> list[str]:
    from pypdf import PdfReader

    (image,) = PdfReader(io.BytesIO(pdf)).pages[0].images
    return [d.text for d in zxingcpp.read_barcodes(image.image)]


def test_the_pdf_and_the_png_download_share_one_drawing_of_the_qr(holder, second_dose, es256_signer, now):
    from vaxhub.certificates.dcc import render_hc1_png

    hc1 = issue_dcc(holder, second_dose, es256_signer, issued_at=now)
    # Drawn first, the PDF leaves its QR image as the issuance's dcc.png download.
    cache = RenderCache()
    pdf, media_type = render_download(_with_details(_stored("URN:UVCI:01:VN:P1", hc1)), "certificate.pdf", cache=cache)
    png = cache.get(("URN:UVCI:01:VN:P1", "dcc.png"))
    assert media_type == "application/pdf" and png is not None
    assert [d.text for d in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))] == [hc1] == _pdf_qr(pdf)
    # Drawn after it, the PDF embeds the dcc.png already kept (planted here with another text to tell them apart).
    cache = RenderCache()
    cache.put(("URN:UVCI:01:VN:P2", "dcc.png"), render_hc1_png("HC1:PLANTED"))
    pdf, _ = render_download(_with_details(_stored("URN:UVCI:01:VN:P2", hc1)), "certificate.pdf", cache=cache)
    assert _pdf_qr(pdf) == ["HC1:PLANTED"]
