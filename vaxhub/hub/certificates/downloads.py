"""Each stored certificate in each downloadable form.

The signed artefacts are stored as issued; images and the PDF are drawn from
them on request (the same text always gives the same QR):

    dcc.txt                  the `HC1:` text                         text/plain
    dcc.png, dcc.svg         its QR code (zxing-cpp / segno, ECC Q)   image/png, image/svg+xml
    shc.txt                  the `shc:/` numeric QR payload           text/plain
    shc.png                  its QR code (qrcode, two segments)       image/png
    card.smart-health-card   `{"verifiableCredential": [jws]}`        application/smart-health-card
    ddcc.json                the WHO DDCC:VS Bundle                   application/fhir+json
    certificate.pdf          Vietnamese and English, with the DCC QR  application/pdf
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from starlette.concurrency import run_in_threadpool

from vaxhub.certificates import dcc, shc
from vaxhub.certificates.pdf import CertificateDocument, PdfDose, render_certificate_pdf
from vaxhub.certificates.pdf_process import PdfProcess
from vaxhub.hub.rest_after_failure import RestAfterFailure

TEXT = "text/plain; charset=utf-8"
PDF = "certificate.pdf"


@dataclass(frozen=True)
class StoredCertificate:
    """One issuance: its rows' shared fields and the artefact of each format."""

    uvci: str
    patient_id: str
    issued_at: dt.datetime
    expires_at: dt.datetime
    status: str
    dose_number: int
    total_doses: int
    revoked: bool
    revocation_reason: str | None
    identity_override: str | None
    details: dict[str, Any]
    artefacts: dict[str, str]  # format -> content
    kids: dict[str, str | None]

    def summary(self) -> dict[str, Any]:
        return {
            "uvci": self.uvci,
            "patient": self.patient_id,
            "status": self.status,
            "dose_number": self.dose_number,
            "total_doses": self.total_doses,
            "issued_at": _instant(self.issued_at),
            "expires_at": _instant(self.expires_at),
            "revoked": self.revoked,
            "revocation_reason": self.revocation_reason,
            "identity_override": self.identity_override,
            "signer_kid": self.kids.get("dcc"),
            "card_kid": self.kids.get("shc"),
            "downloads": sorted(DOWNLOADS),
        }


def _instant(moment: dt.datetime) -> str:
    return moment.replace(tzinfo=dt.timezone.utc).isoformat().replace("+00:00", "Z")


def pdf_document(cert: StoredCertificate, qr_png: bytes | None = None) -> CertificateDocument:
    """What the certificate PDF shows of an issuance."""
    d = cert.details
    doses = [
        PdfDose(x["number"], dt.date.fromisoformat(x["date"]), x["vaccine"], x.get("lot"), x.get("place"))
        for x in d["doses"]
    ]
    return CertificateDocument(
        full_name=d["full_name"],
        name_icao=d["name_icao"],
        birth_date=d["birth_date"],
        identifier=d.get("identifier"),
        doses=doses,
        complete=d["complete"],
        certificate_id=cert.uvci,
        issuer=d.get("issuer") or "Bộ Y tế / Ministry of Health of Viet Nam",
        issued_at=cert.issued_at.replace(tzinfo=dt.timezone.utc),
        expires_at=cert.expires_at.replace(tzinfo=dt.timezone.utc),
        qr_text=cert.artefacts["dcc"],
        qr_png=qr_png,
    )


# Each builder gets the issuance and `drawn(name)`, another download of the
# same issuance through the caches: the PDF's QR is the `dcc.png` download
# (same text, ECC level and scale), drawn once for both.
Builder = Callable[[StoredCertificate, Callable[[str], bytes]], bytes | str]
DOWNLOADS: dict[str, tuple[str, Builder]] = {
    "dcc.txt": (TEXT, lambda c, _drawn: c.artefacts["dcc"]),
    "dcc.png": ("image/png", lambda c, _drawn: dcc.render_hc1_png(c.artefacts["dcc"])),
    "dcc.svg": ("image/svg+xml", lambda c, _drawn: dcc.render_hc1_svg(c.artefacts["dcc"])),
    "shc.txt": (TEXT, lambda c, _drawn: shc.encode_numeric(c.artefacts["shc"])),
    "shc.png": ("image/png", lambda c, _drawn: shc.render_card_png(shc.encode_numeric(c.artefacts["shc"]))),
    "card.smart-health-card": (shc.FILE_MEDIA_TYPE, lambda c, _drawn: shc.card_file([c.artefacts["shc"]])),
    "ddcc.json": ("application/fhir+json", lambda c, _drawn: c.artefacts["ddcc"]),
    PDF: ("application/pdf", lambda c, drawn: render_certificate_pdf(pdf_document(c, drawn("dcc.png")))),
}


# Drawn forms worth keeping: a QR image takes tens of milliseconds of CPU and
# the PDF hundreds, while an issuance never changes (a correction issues a new
# UVCI), so what was drawn may be served again without ever being stale.
_DRAWN = frozenset({"dcc.png", "dcc.svg", "shc.png", "certificate.pdf"})

# How long a drawing stays in the shared cache: the minutes in which a holder
# opens the app, the QR and the PDF again, from whichever API process answers.
# Memory stays bounded by the download rate: 5 PDFs/s for 10 minutes is about 100 MB.
SHARED_SECONDS = 600

log = logging.getLogger(__name__)


class SharedRenders(Protocol):
    """A cache every API process reads and writes (Redis)."""

    def get(self, key: str) -> bytes | None: ...
    def put(self, key: str, body: bytes, seconds: int) -> None: ...


class RedisRenders:
    """Drawn downloads in Redis, each expiring after `SHARED_SECONDS`. A cache
    only: when Redis is slow or down the download is drawn here instead, and
    Redis is left alone for `rest_seconds` (a timeout on every download would
    add its wait to each, and a warning line)."""

    def __init__(self, client, *, prefix: str = "vaxhub:render:", rest_seconds: float = 30.0,  # noqa: ANN001 - a redis.Redis
                 clock: Callable[[], float] = time.monotonic):
        self.client = client
        self.prefix = prefix
        self.rest = RestAfterFailure(rest_seconds, clock=clock)
        self.failures = 0

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 0.25) -> "RedisRenders":
        import redis

        return cls(redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout))

    def get(self, key: str) -> bytes | None:
        return self._call(lambda: self.client.get(self.prefix + key), "drawing here")

    def put(self, key: str, body: bytes, seconds: int) -> None:
        self._call(lambda: self.client.set(self.prefix + key, body, ex=seconds), "not kept")

    def _call(self, command: Callable[[], Any], instead: str) -> Any:
        import redis

        if self.rest.resting:
            return None
        try:
            return command()
        except redis.RedisError as exc:
            self.failures += 1
            self.rest.failed()
            log.warning("shared render cache unavailable (%s), %s; next try in %.0f s", exc, instead, self.rest.seconds)
            return None


class RenderCache:
    """The last `entries` drawn downloads of this process, by (UVCI, name), in
    front of an optional cache shared by every process (`shared`)."""

    def __init__(self, entries: int = 512, *, shared: SharedRenders | None = None):
        self.entries = entries
        self.shared = shared
        self._items: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.shared_hits = 0

    def get(self, key: tuple[str, str]) -> bytes | None:
        with self._lock:
            body = self._items.get(key)
            if body is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return body
        if self.shared is not None and (body := self.shared.get(_shared_key(key))) is not None:
            self._keep(key, body)
            with self._lock:
                self.shared_hits += 1
        return body

    def put(self, key: tuple[str, str], body: bytes) -> None:
        self._keep(key, body)
        if self.shared is not None:
            self.shared.put(_shared_key(key), body, SHARED_SECONDS)

    def _keep(self, key: tuple[str, str], body: bytes) -> None:
        with self._lock:
            self._items[key] = body
            self._items.move_to_end(key)
            while len(self._items) > self.entries:
                self._items.popitem(last=False)


def _shared_key(key: tuple[str, str]) -> str:
    uvci, name = key
    return f"{uvci}/{name}"


def render_cache(redis_url: str | None) -> RenderCache:
    """This process's cache, shared through Redis when the hub has one."""
    return RenderCache(shared=RedisRenders.from_url(redis_url) if redis_url else None)


def render_download(cert: StoredCertificate, name: str, *, cache: RenderCache | None) -> tuple[bytes, str]:
    """The bytes and media type of download `name` (a key of DOWNLOADS)."""
    media_type, build = DOWNLOADS[name]
    key = (cert.uvci, name)
    if cache is not None and name in _DRAWN and (body := cache.get(key)) is not None:
        return body, media_type
    built = build(cert, lambda other: render_download(cert, other, cache=cache)[0])
    body = built.encode("utf-8") if isinstance(built, str) else built
    if cache is not None and name in _DRAWN:
        cache.put(key, body)
    return body, media_type


async def render_download_served(cert: StoredCertificate, name: str, *, cache: RenderCache | None, pdfs: PdfProcess) -> tuple[bytes, str]:
    """`render_download` for a route of a served process, from its event loop.

    A PDF not drawn before is drawn by `pdfs` (its child process once
    started) while the request waits in the event loop, holding none of the
    request threads; the caches and everything else run on a request thread."""
    if name != PDF or not pdfs.started:
        return await run_in_threadpool(render_download, cert, name, cache=cache)
    body, qr_png = await run_in_threadpool(_kept_pdf_or_its_qr, cert, cache)
    if body is None:
        body = await pdfs.draw(pdf_document(cert, qr_png))
        if cache is not None:
            await run_in_threadpool(cache.put, (cert.uvci, PDF), body)
    return body, DOWNLOADS[PDF][0]


def _kept_pdf_or_its_qr(cert: StoredCertificate, cache: RenderCache | None) -> tuple[bytes | None, bytes | None]:
    """(the PDF, None) when it was drawn before; else (None, the QR image it shows)."""
    if cache is not None and (body := cache.get((cert.uvci, PDF))) is not None:
        return body, None
    return None, render_download(cert, "dcc.png", cache=cache)[0]
