"""Shared rate limits and request ids on outbox jobs

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27

- `rate_limit_window`: per-caller request counters shared by every hub process.
- `verification_job.request_id`, `mpi_record.request_id`: the id of the API
  request that queued the job, bound by the worker while it processes it.
"""
from alembic import op
import sqlalchemy as sa

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_window",
        sa.Column("caller", sa.String(length=200), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("caller", "window_start", name=op.f("pk_rate_limit_window")),
    )
    op.create_index("ix_rate_limit_window_expires", "rate_limit_window", ["expires_at"], unique=False)
    # Nullable, no default: adding them rewrites nothing on PostgreSQL.
    op.add_column("verification_job", sa.Column("request_id", sa.String(length=64), nullable=True))
    op.add_column("mpi_record", sa.Column("request_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mpi_record") as batch:
        batch.drop_column("request_id")
    with op.batch_alter_table("verification_job") as batch:
        batch.drop_column("request_id")
    op.drop_index("ix_rate_limit_window_expires", table_name="rate_limit_window")
    op.drop_table("rate_limit_window")
