"""Master patient index: persons, record links, blocks, term counts, reviews, history

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "mpi_person",
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("merged_into", sa.String(length=64), nullable=True),
        sa.Column("golden_stale", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("person_id", name=op.f("pk_mpi_person")),
    )
    op.create_index("ix_mpi_person_stale", "mpi_person", ["golden_stale"])

    op.create_table(
        "mpi_record",
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=64), nullable=True),
        sa.Column("record_version", sa.Integer(), nullable=True),
        sa.Column("match_keys", DOCUMENT, nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=True),
        sa.Column("grade", sa.String(length=16), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("reasons", DOCUMENT, nullable=True),
        sa.Column("verified_cccd", sa.String(length=12), nullable=True),
        sa.Column("registry_cccd", sa.String(length=12), nullable=True),
        sa.Column("locked", sa.Boolean(), nullable=False),
        sa.Column("queued_at", sa.DateTime(), nullable=False),
        sa.Column("linked_at", sa.DateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("record_id", name=op.f("pk_mpi_record")),
    )
    op.create_index("ix_mpi_record_person", "mpi_record", ["person_id"])
    op.create_index("ix_mpi_record_queue", "mpi_record", ["state", "queued_at"])
    op.create_index("ix_mpi_record_verified", "mpi_record", ["verified_cccd"])

    op.create_table(
        "mpi_block",
        sa.Column("key", sa.String(length=160), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("key", "record_id", name=op.f("pk_mpi_block")),
    )
    op.create_index("ix_mpi_block_record", "mpi_block", ["record_id"])

    op.create_table(
        "mpi_term",
        sa.Column("field", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=160), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("field", "value", name=op.f("pk_mpi_term")),
    )

    op.create_table(
        "mpi_review",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("candidate_id", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("grade", sa.String(length=16), nullable=False),
        sa.Column("reasons", DOCUMENT, nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("decided_by", sa.String(length=100), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mpi_review")),
    )
    op.create_index("ix_mpi_review_status", "mpi_review", ["status", "created_at"])
    op.create_index("ix_mpi_review_record", "mpi_review", ["record_id"])
    op.create_index("ix_mpi_review_candidate", "mpi_review", ["candidate_id"])

    op.create_table(
        "mpi_distinct",
        sa.Column("record_a", sa.String(length=64), nullable=False),
        sa.Column("record_b", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("record_a", "record_b", name=op.f("pk_mpi_distinct")),
    )
    op.create_index("ix_mpi_distinct_b", "mpi_distinct", ["record_b"])

    op.create_table(
        "mpi_event",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=24), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=True),
        sa.Column("person_id", sa.String(length=64), nullable=True),
        sa.Column("other_person_id", sa.String(length=64), nullable=True),
        sa.Column("review_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("before", DOCUMENT, nullable=True),
        sa.Column("after", DOCUMENT, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mpi_event")),
    )
    op.create_index("ix_mpi_event_person", "mpi_event", ["person_id", "id"])
    op.create_index("ix_mpi_event_other", "mpi_event", ["other_person_id", "id"])
    op.create_index("ix_mpi_event_record", "mpi_event", ["record_id", "id"])

    op.create_table(
        "mpi_cursor",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_mpi_cursor")),
    )


def downgrade() -> None:
    for table in ("mpi_cursor", "mpi_event", "mpi_distinct", "mpi_review", "mpi_term", "mpi_block", "mpi_record", "mpi_person"):
        op.drop_table(table)
