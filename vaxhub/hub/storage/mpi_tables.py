"""Tables of the master patient index (migration 0006).

The link state is authoritative here; the golden Patient resources the hub
stores are derived from it.

- `mpi_person`: one row per person (its id is the golden Patient's id):
  active, or merged into another person (kept so that a merge can be undone),
  and whether its golden Patient must be rebuilt (`golden_stale`, set by the
  batch re-linker, cleared by the worker that rebuilds it).
- `mpi_record`: one row per site Patient: the person it belongs to, the
  match keys of the version last linked, how it joined (registry, score,
  operator, new) with grade, score and reasons, the CCCD the population
  registry verified or named for it, whether an operator pinned it
  (`locked`), and the outbox columns (`state` queued/linked/failed,
  `queued_at`, attempts): a Patient write queues its row in the same
  transaction, the MPI worker links it.
- `mpi_block`: blocking key → record, the index candidate lookups use.
- `mpi_term`: how many records hold each value of a matched field (term
  frequencies for Fellegi–Sunter weights), kept current with every link;
  the row ("", "") counts the records.
- `mpi_review`: pairs the score put between the review and link thresholds,
  for an operator to accept or reject.
- `mpi_distinct`: pairs of records an operator said are different people
  (a rejected review, an unlink); automatic linking never joins them.
- `mpi_event`: append-only history of every change of membership with
  actor, reason and the state before and after, from which any change can
  be undone.
- `mpi_cursor`: how far the MPI worker has read `verification_result`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from vaxhub.hub.storage.tables import Base

DOCUMENT = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


class MpiPersonRow(Base):
    __tablename__ = "mpi_person"

    person_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))  # active | merged
    merged_into: Mapped[str | None] = mapped_column(String(64))
    golden_stale: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (Index("ix_mpi_person_stale", "golden_stale"),)


class MpiRecordRow(Base):
    __tablename__ = "mpi_record"

    record_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[str | None] = mapped_column(String(64))
    record_version: Mapped[int | None] = mapped_column(Integer)
    match_keys: Mapped[dict[str, Any] | None] = mapped_column(DOCUMENT)
    state: Mapped[str] = mapped_column(String(16))  # queued | linked | failed
    method: Mapped[str | None] = mapped_column(String(16))  # registry | score | operator | new | batch
    grade: Mapped[str | None] = mapped_column(String(16))  # certain | probable | possible
    score: Mapped[float | None] = mapped_column(Float)
    reasons: Mapped[list[str] | None] = mapped_column(DOCUMENT)
    verified_cccd: Mapped[str | None] = mapped_column(String(12))
    registry_cccd: Mapped[str | None] = mapped_column(String(12))
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    queued_at: Mapped[datetime] = mapped_column(DateTime)
    linked_at: Mapped[datetime | None] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # The API request that queued the record (migration 0011), bound by the worker for its logs.
    request_id: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_mpi_record_person", "person_id"),
        Index("ix_mpi_record_queue", "state", "queued_at"),
        Index("ix_mpi_record_verified", "verified_cccd"),
    )


class MpiBlockRow(Base):
    __tablename__ = "mpi_block"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(64), primary_key=True)

    __table_args__ = (Index("ix_mpi_block_record", "record_id"),)


class MpiTermRow(Base):
    __tablename__ = "mpi_term"

    field: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(160), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


class MpiReviewRow(Base):
    __tablename__ = "mpi_review"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    record_id: Mapped[str] = mapped_column(String(64))
    candidate_id: Mapped[str] = mapped_column(String(64))
    person_id: Mapped[str] = mapped_column(String(64))  # the candidate's person when queued
    score: Mapped[float] = mapped_column(Float)
    weight: Mapped[float] = mapped_column(Float)
    grade: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[list[str] | None] = mapped_column(DOCUMENT)
    status: Mapped[str] = mapped_column(String(16))  # open | accepted | rejected | superseded
    created_at: Mapped[datetime] = mapped_column(DateTime)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime)
    decided_by: Mapped[str | None] = mapped_column(String(100))
    reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_mpi_review_status", "status", "created_at"),
        Index("ix_mpi_review_record", "record_id"),
        Index("ix_mpi_review_candidate", "candidate_id"),
    )


class MpiDistinctRow(Base):
    __tablename__ = "mpi_distinct"

    record_a: Mapped[str] = mapped_column(String(64), primary_key=True)  # record_a < record_b
    record_b: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (Index("ix_mpi_distinct_b", "record_b"),)


class MpiEventRow(Base):
    __tablename__ = "mpi_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(24))
    record_id: Mapped[str | None] = mapped_column(String(64))
    person_id: Mapped[str | None] = mapped_column(String(64))
    other_person_id: Mapped[str | None] = mapped_column(String(64))
    review_id: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    before: Mapped[dict[str, Any] | None] = mapped_column(DOCUMENT)
    after: Mapped[dict[str, Any] | None] = mapped_column(DOCUMENT)

    __table_args__ = (
        Index("ix_mpi_event_person", "person_id", "id"),
        Index("ix_mpi_event_other", "other_person_id", "id"),
        Index("ix_mpi_event_record", "record_id", "id"),
    )


class MpiCursorRow(Base):
    __tablename__ = "mpi_cursor"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
