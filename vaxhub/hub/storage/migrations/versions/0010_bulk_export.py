"""FHIR Bulk Data export: the export job table

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

DOCUMENT = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "bulk_export_job",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.String(length=255), nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("group_id", sa.String(length=64), nullable=True),
        sa.Column("group_version", sa.Integer(), nullable=True),
        sa.Column("patients", DOCUMENT, nullable=True),
        sa.Column("types", DOCUMENT, nullable=False),
        sa.Column("since", sa.DateTime(), nullable=True),
        sa.Column("request_url", sa.Text(), nullable=False),
        sa.Column("warnings", DOCUMENT, nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("transaction_time", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("available_at", sa.DateTime(), nullable=False),
        sa.Column("lease_token", sa.String(length=36), nullable=True),
        sa.Column("leased_by", sa.String(length=100), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("resources_written", sa.Integer(), nullable=False),
        sa.Column("progress", sa.String(length=255), nullable=True),
        sa.Column("output_dir", sa.String(length=36), nullable=True),
        sa.Column("output", DOCUMENT, nullable=True),
        sa.Column("errors", DOCUMENT, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bulk_export_job")),
    )
    op.create_index("ix_bulk_export_job_claim", "bulk_export_job", ["state", "available_at"], unique=False)
    op.create_index("ix_bulk_export_job_client", "bulk_export_job", ["client_id", "state"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_bulk_export_job_client", table_name="bulk_export_job")
    op.drop_index("ix_bulk_export_job_claim", table_name="bulk_export_job")
    op.drop_table("bulk_export_job")
