"""Tables of the ingestion paths (migration 0004).

- `import_job`: one spreadsheet import: the uploaded file itself (any hub
  process may run or resume it), its state, progress counts and checkpoint
  (`next_row`: every row before it is stored or reported), and a heartbeat so
  that a job whose process died can be taken over.
- `import_issue`: the row report, written with each batch's checkpoint.
- `hl7_message`: MSH-10 control ids already acknowledged AA per sender, so a
  re-sent message gets the same answer without being processed again.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from vaxhub.hub.storage.tables import Base


class ImportJobRow(Base):
    __tablename__ = "import_job"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    site_code: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255))
    file_sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16))  # queued, running, done, failed
    total_rows: Mapped[int] = mapped_column(Integer, default=0)
    next_row: Mapped[int] = mapped_column(Integer, default=0)
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    rows_stored: Mapped[int] = mapped_column(Integer, default=0)
    rows_rejected: Mapped[int] = mapped_column(Integer, default=0)
    rows_warned: Mapped[int] = mapped_column(Integer, default=0)
    patients_created: Mapped[int] = mapped_column(Integer, default=0)
    doses_created: Mapped[int] = mapped_column(Integer, default=0)
    doses_existing: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (Index("ix_import_job_file", "file_sha256", "site_code"),)


class ImportIssueRow(Base):
    __tablename__ = "import_issue"

    job_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    row: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    column_name: Mapped[str] = mapped_column(String(255))
    severity: Mapped[str] = mapped_column(String(8))
    message: Mapped[str] = mapped_column(Text)


class Hl7MessageRow(Base):
    __tablename__ = "hl7_message"

    sender: Mapped[str] = mapped_column(String(255), primary_key=True)
    control_id: Mapped[str] = mapped_column(String(199), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime)
    ack: Mapped[str] = mapped_column(Text)
