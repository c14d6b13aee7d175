"""Tables of access control: registered clients, used assertion ids, one-time codes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from vaxhub.hub.storage.tables import Base


class ClientRow(Base):
    """A registered caller: hospital or site system, registry, verifier or operator console."""

    __tablename__ = "auth_client"

    client_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))  # system | verifier | operator
    site_code: Mapped[str | None] = mapped_column(String(64))  # the organisation it writes as
    scopes: Mapped[str] = mapped_column(String(2000))  # space-separated SMART scopes it may be granted
    roles: Mapped[str] = mapped_column(String(500), default="")  # operator roles, space-separated
    jwks: Mapped[dict[str, Any]] = mapped_column(JSON)  # its public keys
    created: Mapped[datetime] = mapped_column(DateTime)
    disabled: Mapped[bool] = mapped_column(default=False)


class UsedAssertionRow(Base):
    """`jti` of every client assertion accepted, until it could no longer be valid."""

    __tablename__ = "auth_used_jti"

    client_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (Index("ix_auth_used_jti_expires", "expires"),)


class OtpChallengeRow(Base):
    """A one-time code sent to a citizen's phone; only its hash is kept."""

    __tablename__ = "auth_otp"

    challenge_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str] = mapped_column(String(32))
    code_hash: Mapped[str] = mapped_column(String(128))
    expires: Mapped[datetime] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    used: Mapped[bool] = mapped_column(default=False)
    created: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (Index("ix_auth_otp_phone_created", "phone", "created"),)
