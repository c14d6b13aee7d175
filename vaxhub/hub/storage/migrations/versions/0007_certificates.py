"""Certificates: issued certificates, withdrawn signers, imported trust lists

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "certificate",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("uvci", sa.String(length=80), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("signer_kid", sa.String(length=64), nullable=True),
        sa.Column("signer_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("issued_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("dose_number", sa.Integer(), nullable=False),
        sa.Column("total_doses", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("details", DOCUMENT, nullable=False),
        sa.Column("issued_by", sa.String(length=100), nullable=False),
        sa.Column("identity_override", sa.Text(), nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("revocation_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificate")),
        sa.UniqueConstraint("uvci", "format", name=op.f("uq_certificate_uvci_format")),
    )
    op.create_index("ix_certificate_patient", "certificate", ["patient_id", "issued_at"])
    op.create_index("ix_certificate_signer", "certificate", ["signer_fingerprint"])

    op.create_table(
        "certificate_signer_revocation",
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("kid", sa.String(length=16), nullable=False),
        sa.Column("jwk_kid", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("revoked_by", sa.String(length=100), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", name=op.f("pk_certificate_signer_revocation")),
    )

    op.create_table(
        "trusted_signer",
        sa.Column("list_name", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("kid", sa.String(length=16), nullable=False),
        sa.Column("country", sa.String(length=8), nullable=True),
        sa.Column("certificate", sa.Text(), nullable=False),
        sa.Column("imported_by", sa.String(length=100), nullable=False),
        sa.Column("imported_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("list_name", "fingerprint", name=op.f("pk_trusted_signer")),
    )

    op.create_table(
        "trusted_card_key",
        sa.Column("list_name", sa.String(length=64), nullable=False),
        sa.Column("issuer", sa.String(length=255), nullable=False),
        sa.Column("kid", sa.String(length=128), nullable=False),
        sa.Column("jwk", DOCUMENT, nullable=False),
        sa.Column("imported_by", sa.String(length=100), nullable=False),
        sa.Column("imported_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("list_name", "issuer", "kid", name=op.f("pk_trusted_card_key")),
    )


def downgrade() -> None:
    op.drop_table("trusted_card_key")
    op.drop_table("trusted_signer")
    op.drop_table("certificate_signer_revocation")
    op.drop_index("ix_certificate_signer", table_name="certificate")
    op.drop_index("ix_certificate_patient", table_name="certificate")
    op.drop_table("certificate")
