"""Revoked certificates found without reading the certificate table

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-23

- `ix_certificate_revoked`: a partial index of the revoked certificates. The
  verifier's trust reads them (and notices new ones) on every verification;
  without it each read scanned every certificate ever issued.
"""
from alembic import op
import sqlalchemy as sa

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Each predicate as the dialect matches it against `revoked = true` (SQLite
    # compares the term as written, PostgreSQL simplifies it to `revoked`).
    op.create_index("ix_certificate_revoked", "certificate", ["revoked_at"], unique=False,
                    postgresql_where=sa.text("revoked"), sqlite_where=sa.text("revoked = 1"))


def downgrade() -> None:
    op.drop_index("ix_certificate_revoked", table_name="certificate")
