"""Identity verification: the social insurance cross-check beside each result

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    # Nullable columns: results recorded before the cross-check existed keep NULL.
    op.add_column("verification_job", sa.Column("insurance_status", sa.String(length=16), nullable=True))
    op.add_column("verification_job", sa.Column("insurance_mismatches", DOCUMENT, nullable=True))
    op.add_column("verification_result", sa.Column("insurance_status", sa.String(length=16), nullable=True))
    op.add_column("verification_result", sa.Column("insurance_mismatches", DOCUMENT, nullable=True))
    op.add_column("verification_result", sa.Column("insurance_message", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("verification_result", schema=None) as batch_op:
        batch_op.drop_column("insurance_message")
        batch_op.drop_column("insurance_mismatches")
        batch_op.drop_column("insurance_status")
    with op.batch_alter_table("verification_job", schema=None) as batch_op:
        batch_op.drop_column("insurance_mismatches")
        batch_op.drop_column("insurance_status")
