"""Reminders already sent (migration 0009).

`reminder_sent` has one row per dose a person was reminded of, keyed by
patient, vaccine and dose number: the primary key is what makes a second
sender, racing or later, skip the dose rather than text the person again.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, DateTime, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from vaxhub.hub.storage.tables import Base


class ReminderSentRow(Base):
    __tablename__ = "reminder_sent"

    patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    vaccine: Mapped[str] = mapped_column(String(40), primary_key=True)  # our vaccine code (vaxhub.fhir.vaccines)
    dose_number: Mapped[int] = mapped_column(Integer, primary_key=True)  # the dose reminded of, from 2
    due_date: Mapped[date] = mapped_column(Date)
    site_code: Mapped[str | None] = mapped_column(String(40))
    phone: Mapped[str] = mapped_column(String(32))
    sent_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (Index("ix_reminder_sent_site", "site_code", "sent_at"),)
