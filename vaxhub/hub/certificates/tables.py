"""Tables of issued certificates, withdrawn signers and imported trust (migration 0007).

- `certificate`: one row per format of each issued certificate. The formats
  of one issuance share its UVCI (the DCC's `ci`, the DDCC's `hcid`, and the
  SMART Health Card's revocation id is derived from it), so revoking a UVCI
  revokes every format. `content` is the signed artefact as issued (the `HC1:`
  text, the JWS, the DDCC Bundle JSON); images and PDFs are rendered from it.
- `certificate_signer_revocation`: our document signers withdrawn as
  compromised; everything they signed is refused.
- `trusted_signer` / `trusted_card_key`: foreign DCC document signers and SMART
  Health Card issuer keys imported by operators, grouped by the list they came in.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from vaxhub.hub.storage.tables import Base

DOCUMENT = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


class CertificateRow(Base):
    __tablename__ = "certificate"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    uvci: Mapped[str] = mapped_column(String(80))
    patient_id: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(8))  # dcc | shc | ddcc
    signer_kid: Mapped[str | None] = mapped_column(String(64))  # DCC kid (base64) or SHC JWK thumbprint
    signer_fingerprint: Mapped[str] = mapped_column(String(64))  # SHA-256 of the document signer certificate
    issued_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(8))  # yellow | green
    dose_number: Mapped[int] = mapped_column(Integer)
    total_doses: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(DOCUMENT)  # holder and doses as shown on the PDF
    issued_by: Mapped[str] = mapped_column(String(100))
    identity_override: Mapped[str | None] = mapped_column(Text)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    revocation_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("uvci", "format"),
        Index("ix_certificate_patient", "patient_id", "issued_at"),
        Index("ix_certificate_signer", "signer_fingerprint"),
        # The few revoked ones, read by every verification (`CertificateTrust.verifier_trust`).
        Index("ix_certificate_revoked", "revoked_at", postgresql_where=text("revoked"), sqlite_where=text("revoked = 1")),
    )


class SignerRevocationRow(Base):
    __tablename__ = "certificate_signer_revocation"

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    kid: Mapped[str] = mapped_column(String(16))  # DCC kid, base64
    jwk_kid: Mapped[str | None] = mapped_column(String(64))  # SHC kid of the same key
    reason: Mapped[str] = mapped_column(Text)
    revoked_by: Mapped[str] = mapped_column(String(100))
    revoked_at: Mapped[datetime] = mapped_column(DateTime)


class TrustedSignerRow(Base):
    __tablename__ = "trusted_signer"

    list_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    kid: Mapped[str] = mapped_column(String(16))
    country: Mapped[str | None] = mapped_column(String(8))
    certificate: Mapped[str] = mapped_column(Text)  # base64 DER
    imported_by: Mapped[str] = mapped_column(String(100))
    imported_at: Mapped[datetime] = mapped_column(DateTime)


class TrustedCardKeyRow(Base):
    __tablename__ = "trusted_card_key"

    list_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    issuer: Mapped[str] = mapped_column(String(255), primary_key=True)
    kid: Mapped[str] = mapped_column(String(128), primary_key=True)
    jwk: Mapped[dict[str, Any]] = mapped_column(DOCUMENT)
    imported_by: Mapped[str] = mapped_column(String(100))
    imported_at: Mapped[datetime] = mapped_column(DateTime)
