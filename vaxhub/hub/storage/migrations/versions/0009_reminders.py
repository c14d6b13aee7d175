"""Dose reminders: the doses a person was already reminded of

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reminder_sent",
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("vaccine", sa.String(length=40), nullable=False),
        sa.Column("dose_number", sa.Integer(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("site_code", sa.String(length=40), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("patient_id", "vaccine", "dose_number", name=op.f("pk_reminder_sent")),
    )
    op.create_index("ix_reminder_sent_site", "reminder_sent", ["site_code", "sent_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_reminder_sent_site", table_name="reminder_sent")
    op.drop_table("reminder_sent")
