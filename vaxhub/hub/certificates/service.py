"""The hub's certificate operations in one object, built from Settings:
issuing, finding what was issued, verifying, trust and revocation."""

from __future__ import annotations

import datetime as dt
from itertools import groupby
from sqlalchemy import Engine, Select, bindparam, select

from vaxhub.certificates.pdf_process import PdfProcess
from vaxhub.certificates.verify import VerificationReport, verify_text
from vaxhub.errors import NotFound
from vaxhub.hub.audit.trail import AuditTrail, Interaction
from vaxhub.hub.certificates.downloads import StoredCertificate, render_cache
from vaxhub.hub.certificates.issuance import CertificateIssuer, IssuedCertificate, IssuerProfile
from vaxhub.hub.certificates.signing_keys import HubSigningKeys
from vaxhub.hub.certificates.tables import CertificateRow
from vaxhub.hub.certificates.trust_store import CertificateTrust
from vaxhub.hub.observability.metrics import CERTIFICATES_ISSUED
from vaxhub.hub.security.principal import Principal
from vaxhub.hub.storage.store import FhirStore
from vaxhub.settings import Settings

CERTIFICATE = CertificateRow.__table__
CARD_ISSUER_PATH = "/shc"
# Built once: every download and every page of a person's certificates reads these.
_NEWEST_FIRST = (CERTIFICATE.c.issued_at.desc(), CERTIFICATE.c.uvci, CERTIFICATE.c.format)
_BY_UVCI = select(CERTIFICATE).where(CERTIFICATE.c.uvci == bindparam("key")).order_by(*_NEWEST_FIRST)
_BY_PATIENT = select(CERTIFICATE).where(CERTIFICATE.c.patient_id == bindparam("key")).order_by(*_NEWEST_FIRST)


class CertificateService:
    def __init__(self, engine: Engine, store: FhirStore, trail: AuditTrail, settings: Settings, *, keys: HubSigningKeys | None = None):
        self.engine = engine
        self.store = store
        self.settings = settings
        self.keys = keys or HubSigningKeys.from_settings(settings)
        self.issuer = CertificateIssuer(engine, store, self.keys, trail)
        self.trust = CertificateTrust(engine, self.keys, country=settings.cert_country)
        self.renders = render_cache(settings.redis_url)  # drawn QR images and PDFs, by issuance
        self.pdfs = PdfProcess(nice=settings.pdf_nice)  # started by a served process (vaxhub.hub.asgi)

    def card_issuer(self, root: str) -> str:
        """SHC `iss`: the setting, else the public root (or the request's) + /shc."""
        if self.settings.shc_issuer_url:
            return self.settings.shc_issuer_url.rstrip("/")
        return (self.settings.public_url or root).rstrip("/") + CARD_ISSUER_PATH

    def profile(self, root: str) -> IssuerProfile:
        s = self.settings
        return IssuerProfile(s.cert_country, s.cert_issuer, s.cert_valid_days, self.card_issuer(root))

    def issue(self, patient_id: str, *, who: Principal, root: str, interaction: Interaction, override_reason: str | None = None) -> IssuedCertificate:
        issued = self.issuer.issue(patient_id, who=who, profile=self.profile(root), interaction=interaction, override_reason=override_reason)
        CERTIFICATES_ISSUED.inc()
        return issued

    def _load(self, statement: Select, key: str) -> list[StoredCertificate]:
        with self.store.reads.connect() as conn:
            rows = conn.execute(statement, {"key": key}).all()
        found = []
        for uvci, group in groupby(rows, key=lambda r: r.uvci):
            parts = list(group)
            first = parts[0]
            found.append(
                StoredCertificate(
                    uvci=uvci, patient_id=first.patient_id, issued_at=first.issued_at, expires_at=first.expires_at,
                    status=first.status, dose_number=first.dose_number, total_doses=first.total_doses,
                    revoked=any(p.revoked for p in parts), revocation_reason=next((p.revocation_reason for p in parts if p.revocation_reason), None),
                    identity_override=first.identity_override, details=first.details,
                    artefacts={p.format: p.content for p in parts}, kids={p.format: p.signer_kid for p in parts},
                )
            )
        return found

    def find(self, uvci: str) -> StoredCertificate:
        found = self._load(_BY_UVCI, uvci)
        if not found:
            raise NotFound(f"no certificate {uvci}")
        return found[0]

    def for_patient(self, patient_id: str) -> list[StoredCertificate]:
        """Every certificate issued for the person, newest first."""
        return self._load(_BY_PATIENT, patient_id)

    def latest(self, patient_id: str) -> StoredCertificate:
        for cert in self.for_patient(patient_id):
            if not cert.revoked:
                return cert
        raise NotFound(f"no valid certificate has been issued for Patient/{patient_id}")

    def verify(self, text: str, *, now: dt.datetime | None = None) -> VerificationReport:
        return verify_text(text, self.trust.verifier_trust(), now=now)
