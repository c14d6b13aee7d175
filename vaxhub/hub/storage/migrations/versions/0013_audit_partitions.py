"""Audit trail partitioned by month on PostgreSQL; audit checkpoints and archives

Revision ID: 0013
Revises: 0011
Create Date: 2026-11-28

- `audit_event` and `audit_patient` are rebuilt: on PostgreSQL as tables
  range-partitioned by month on `recorded` (a DEFAULT partition catches any
  timestamp without a month of its own), on SQLite as plain tables of the same
  shape. Every unique key includes `recorded`, as PostgreSQL requires of a
  partitioned table; `audit_patient` gains `recorded` so that it can be
  partitioned alike and joined to its event by the full key; `seq` and
  `audit_chain_head.last_seq` become 64-bit.
- `audit_checkpoint` (per chain: the last archived event) and `audit_archive`
  (per archived month: file, sha256, chain positions) let `vaxhub retention run`
  drop old months while the chains stay verifiable.

The rebuild copies every row inside the migration's transaction: on a large
trail plan it as downtime (about the time of one `INSERT … SELECT` of the table).
"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0011"
branch_labels = None
depends_on = None

CONTENT = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
EVENT_COLUMNS = "chain, seq, recorded, event_id, action, outcome, client_id, content, prev_hash, hash"
# Months created beyond the current one; `vaxhub retention run` keeps this lead afterwards.
MONTHS_AHEAD = 3


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    op.create_table(
        "audit_checkpoint",
        sa.Column("chain", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("archived_through", sa.DateTime(), nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("chain", name=op.f("pk_audit_checkpoint")),
    )
    op.create_table(
        "audit_archive",
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("chains", sa.JSON(), nullable=False),
        sa.Column("archived_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("month", name=op.f("pk_audit_archive")),
    )
    with op.batch_alter_table("audit_chain_head") as batch:
        batch.alter_column("last_seq", type_=sa.BigInteger(), existing_type=sa.Integer(), existing_nullable=False)

    # Set the old tables aside; their index and constraint names are taken back below.
    op.drop_index("ix_audit_event_client", table_name="audit_event")
    op.drop_index("ix_audit_event_recorded", table_name="audit_event")
    op.rename_table("audit_event", "audit_event_0009")
    op.rename_table("audit_patient", "audit_patient_0009")
    if postgres:
        op.execute("ALTER TABLE audit_event_0009 RENAME CONSTRAINT pk_audit_event TO pk_audit_event_0009")
        op.execute("ALTER TABLE audit_event_0009 RENAME CONSTRAINT uq_audit_event_event_id TO uq_audit_event_0009_event_id")
        op.execute("ALTER TABLE audit_patient_0009 RENAME CONSTRAINT pk_audit_patient TO pk_audit_patient_0009")

    partitioned = {"postgresql_partition_by": "RANGE (recorded)"}
    op.create_table(
        "audit_event",
        sa.Column("chain", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("recorded", sa.DateTime(), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=2), nullable=False),
        sa.Column("client_id", sa.String(length=128), nullable=True),
        sa.Column("content", CONTENT, nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("chain", "seq", "recorded", name=op.f("pk_audit_event")),
        sa.UniqueConstraint("event_id", "recorded", name=op.f("uq_audit_event_event_id_recorded")),
        **partitioned,
    )
    op.create_table(
        "audit_patient",
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("recorded", sa.DateTime(), nullable=False),
        sa.Column("chain", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("patient_id", "recorded", "chain", "seq", name=op.f("pk_audit_patient")),
        **partitioned,
    )
    if postgres:
        _create_partitions(bind)

    op.execute(f"INSERT INTO audit_event ({EVENT_COLUMNS}) SELECT {EVENT_COLUMNS} FROM audit_event_0009")
    # An index row whose event does not exist names nothing and cannot be placed in a month.
    op.execute(
        "INSERT INTO audit_patient (patient_id, recorded, chain, seq) "
        "SELECT p.patient_id, e.recorded, p.chain, p.seq FROM audit_patient_0009 p "
        "JOIN audit_event_0009 e ON e.chain = p.chain AND e.seq = p.seq"
    )
    op.create_index("ix_audit_event_recorded", "audit_event", ["recorded"])
    op.create_index("ix_audit_event_client", "audit_event", ["client_id", "recorded"])
    op.drop_table("audit_patient_0009")
    op.drop_table("audit_event_0009")


def _create_partitions(bind: sa.Connection) -> None:
    """A DEFAULT partition, one per month that holds events, and the months ahead."""
    months = {(d.year, d.month) for (d,) in bind.execute(sa.text("SELECT DISTINCT date_trunc('month', recorded) FROM audit_event_0009"))}
    now = datetime.now(timezone.utc)
    year, month = now.year, now.month
    for _ in range(MONTHS_AHEAD + 1):
        months.add((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    for table in ("audit_event", "audit_patient"):
        op.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
        for y, m in sorted(months):
            ny, nm = (y + 1, 1) if m == 12 else (y, m + 1)
            op.execute(
                f"CREATE TABLE {table}_y{y:04d}m{m:02d} PARTITION OF {table} "
                f"FOR VALUES FROM ('{y:04d}-{m:02d}-01') TO ('{ny:04d}-{nm:02d}-01')"
            )


def downgrade() -> None:
    """Back to plain tables keyed by (chain, seq); archived months stay in their files."""
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    op.drop_index("ix_audit_event_client", table_name="audit_event")
    op.drop_index("ix_audit_event_recorded", table_name="audit_event")
    op.rename_table("audit_event", "audit_event_0013")
    op.rename_table("audit_patient", "audit_patient_0013")
    if postgres:
        op.execute("ALTER TABLE audit_event_0013 RENAME CONSTRAINT pk_audit_event TO pk_audit_event_0013")
        op.execute("ALTER TABLE audit_event_0013 RENAME CONSTRAINT uq_audit_event_event_id_recorded TO uq_audit_event_0013_event_id")
        op.execute("ALTER TABLE audit_patient_0013 RENAME CONSTRAINT pk_audit_patient TO pk_audit_patient_0013")
    op.create_table(
        "audit_event",
        sa.Column("chain", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("recorded", sa.DateTime(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=2), nullable=False),
        sa.Column("client_id", sa.String(length=128), nullable=True),
        sa.Column("content", CONTENT, nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("chain", "seq", name=op.f("pk_audit_event")),
        sa.UniqueConstraint("event_id", name=op.f("uq_audit_event_event_id")),
    )
    op.create_table(
        "audit_patient",
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("chain", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("patient_id", "chain", "seq", name=op.f("pk_audit_patient")),
    )
    op.execute(f"INSERT INTO audit_event ({EVENT_COLUMNS}) SELECT {EVENT_COLUMNS} FROM audit_event_0013")
    op.execute("INSERT INTO audit_patient (patient_id, chain, seq) SELECT patient_id, chain, seq FROM audit_patient_0013")
    op.create_index("ix_audit_event_recorded", "audit_event", ["recorded"])
    op.create_index("ix_audit_event_client", "audit_event", ["client_id", "recorded"])
    op.drop_table("audit_patient_0013")  # on PostgreSQL its partitions go with it
    op.drop_table("audit_event_0013")
    with op.batch_alter_table("audit_chain_head") as batch:
        batch.alter_column("last_seq", type_=sa.Integer(), existing_type=sa.BigInteger(), existing_nullable=False)
    op.drop_table("audit_archive")
    op.drop_table("audit_checkpoint")
