"""Identity verification queue: jobs (outbox), results, registry circuit breakers

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = '0002'
branch_labels = None
depends_on = None

DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "verification_job",
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("patient_version", sa.Integer(), nullable=False),
        sa.Column("claim", DOCUMENT, nullable=False),
        sa.Column("site_ref", sa.String(length=255), nullable=True),
        sa.Column("site_name", sa.String(length=255), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("available_at", sa.DateTime(), nullable=False),
        sa.Column("lease_token", sa.String(length=36), nullable=True),
        sa.Column("leased_by", sa.String(length=100), nullable=True),
        sa.Column("enqueued_at", sa.DateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("result_status", sa.String(length=16), nullable=True),
        sa.Column("result_version", sa.Integer(), nullable=True),
        sa.Column("mismatches", DOCUMENT, nullable=True),
        sa.Column("registry_id", sa.String(length=12), nullable=True),
        sa.Column("checked_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("patient_id", name=op.f("pk_verification_job")),
    )
    with op.batch_alter_table("verification_job", schema=None) as batch_op:
        batch_op.create_index("ix_verification_job_claimable", ["state", "available_at"], unique=False)
        batch_op.create_index("ix_verification_job_result", ["result_status", "site_ref"], unique=False)

    op.create_table(
        "verification_result",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("patient_version", sa.Integer(), nullable=False),
        sa.Column("registry_name", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("mismatches", DOCUMENT, nullable=True),
        sa.Column("registry_id", sa.String(length=12), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=100), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verification_result")),
    )
    with op.batch_alter_table("verification_result", schema=None) as batch_op:
        batch_op.create_index("ix_verification_result_patient", ["patient_id", "patient_version"], unique=False)

    op.create_table(
        "registry_circuit",
        sa.Column("registry_name", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("open_until", sa.DateTime(), nullable=True),
        sa.Column("cooldown_seconds", sa.Float(), nullable=False),
        sa.Column("opened_count", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("probe_by", sa.String(length=100), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("registry_name", name=op.f("pk_registry_circuit")),
    )


def downgrade() -> None:
    op.drop_table("registry_circuit")
    with op.batch_alter_table("verification_result", schema=None) as batch_op:
        batch_op.drop_index("ix_verification_result_patient")
    op.drop_table("verification_result")
    with op.batch_alter_table("verification_job", schema=None) as batch_op:
        batch_op.drop_index("ix_verification_job_result")
        batch_op.drop_index("ix_verification_job_claimable")
    op.drop_table("verification_job")
