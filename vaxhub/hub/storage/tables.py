"""Database tables of the FHIR store (SQLAlchemy 2.x typed declarative).

- `resource` holds the current version of every resource, with its
  compartment key (`patient_id`) so that everything about one patient is a
  single indexed query.
- `resource_version` has a row for every version ever written (create,
  update, delete). The current version's content is stored once, in
  `resource`; a version's content moves into its history row when a newer
  version supersedes it, so the common case (a record never changed) costs
  one copy of the JSON, not two.
- `sp_token`, `sp_string`, `sp_date`, `sp_reference` are the search indexes,
  written in the same transaction as the resource.
- `identifier_claim` makes a business identifier (type, system, value) unique
  across the store, so that two racing conditional creates cannot both win.

ORM rows are kept apart from FHIR models; content is stored as JSON (JSONB on
PostgreSQL).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Index, Integer, MetaData, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# none_as_null: a missing content is SQL NULL, not the JSON text "null", so COALESCE works.
CONTENT = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ResourceRow(Base):
    __tablename__ = "resource"

    res_type: Mapped[str] = mapped_column(String(40), primary_key=True)
    res_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    last_updated: Mapped[datetime] = mapped_column(DateTime)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    patient_id: Mapped[str | None] = mapped_column(String(64))
    content: Mapped[dict[str, Any] | None] = mapped_column(CONTENT)

    __table_args__ = (
        Index("ix_resource_patient", "patient_id", "res_type"),
        Index("ix_resource_last_updated", "res_type", "last_updated"),
    )


class ResourceVersionRow(Base):
    __tablename__ = "resource_version"

    res_type: Mapped[str] = mapped_column(String(40), primary_key=True)
    res_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_updated: Mapped[datetime] = mapped_column(DateTime)
    method: Mapped[str] = mapped_column(String(8))  # create | update | delete
    content: Mapped[dict[str, Any] | None] = mapped_column(CONTENT)

    __table_args__ = (Index("ix_resource_version_type_updated", "res_type", "last_updated"),)


class TokenIndexRow(Base):
    __tablename__ = "sp_token"

    res_type: Mapped[str] = mapped_column(String(40), primary_key=True)
    res_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    param: Mapped[str] = mapped_column(String(40), primary_key=True)
    system: Mapped[str] = mapped_column(String(255), primary_key=True)  # "" when the value has none
    value: Mapped[str] = mapped_column(String(255), primary_key=True)

    __table_args__ = (Index("ix_sp_token_lookup", "res_type", "param", "value", "system"),)


class StringIndexRow(Base):
    __tablename__ = "sp_string"

    res_type: Mapped[str] = mapped_column(String(40), primary_key=True)
    res_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    param: Mapped[str] = mapped_column(String(40), primary_key=True)
    value_exact: Mapped[str] = mapped_column(String(255), primary_key=True)
    value_fold: Mapped[str] = mapped_column(String(255))

    __table_args__ = (
        # text_pattern_ops lets PostgreSQL use the index for prefix LIKE whatever the collation.
        Index("ix_sp_string_fold", "res_type", "param", "value_fold", postgresql_ops={"value_fold": "text_pattern_ops"}),
        Index("ix_sp_string_exact", "res_type", "param", "value_exact"),
    )


class DateIndexRow(Base):
    __tablename__ = "sp_date"

    res_type: Mapped[str] = mapped_column(String(40), primary_key=True)
    res_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    param: Mapped[str] = mapped_column(String(40), primary_key=True)
    start: Mapped[datetime] = mapped_column(DateTime, primary_key=True)
    end: Mapped[datetime] = mapped_column(DateTime, primary_key=True)

    __table_args__ = (
        Index("ix_sp_date_start", "res_type", "param", "start"),
        Index("ix_sp_date_end", "res_type", "param", "end"),
    )


class ReferenceIndexRow(Base):
    __tablename__ = "sp_reference"

    res_type: Mapped[str] = mapped_column(String(40), primary_key=True)
    res_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    param: Mapped[str] = mapped_column(String(40), primary_key=True)
    target_type: Mapped[str] = mapped_column(String(40), primary_key=True)
    target_id: Mapped[str] = mapped_column(String(64), primary_key=True)

    __table_args__ = (Index("ix_sp_reference_target", "target_id", "target_type", "res_type", "param"),)


class IdentifierClaimRow(Base):
    __tablename__ = "identifier_claim"

    # Key order (type, value, system): a batch of identifiers from many systems
    # is then one `value IN (…)` index lookup per resource type.
    res_type: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(String(255), primary_key=True)
    system: Mapped[str] = mapped_column(String(255), primary_key=True)
    res_id: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index("ix_identifier_claim_owner", "res_type", "res_id"),)


