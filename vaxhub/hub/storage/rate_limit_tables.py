"""The shared rate-limit counters (migration 0011).

`rate_limit_window` holds one row per caller and fixed window: how many
requests the caller made in it. Every hub process increments the same row
with one atomic upsert, so a caller's budget is the same whichever process or
machine answers. Rows outlive their window by one more window (the sliding
estimate reads the previous one) and are then swept.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from vaxhub.hub.storage.tables import Base


class RateLimitWindowRow(Base):
    __tablename__ = "rate_limit_window"

    caller: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # epoch milliseconds
    hits: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[int] = mapped_column(BigInteger)  # epoch milliseconds; swept after

    __table_args__ = (Index("ix_rate_limit_window_expires", "expires_at"),)
