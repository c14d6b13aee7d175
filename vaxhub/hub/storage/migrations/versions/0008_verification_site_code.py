"""Identity verification: the site code of each job, for site operators' views

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_SITE_PREFIX = "urn:vaxhub:site:"


def upgrade() -> None:
    op.add_column("verification_job", sa.Column("site_code", sa.String(length=64), nullable=True))
    op.create_index("ix_verification_job_site_code", "verification_job", ["site_code", "result_status"])
    # Existing jobs take the site from their Patient's meta.source, in pages so
    # that a large queue is not held in memory at once.
    conn = op.get_bind()
    job = sa.table("verification_job", sa.column("patient_id", sa.String), sa.column("site_code", sa.String))
    resource = sa.table(
        "resource", sa.column("res_type", sa.String), sa.column("res_id", sa.String), sa.column("content", sa.JSON)
    )
    last = ""
    while True:
        page = conn.execute(
            sa.select(job.c.patient_id).where(job.c.patient_id > last).order_by(job.c.patient_id).limit(1000)
        ).scalars().all()
        if not page:
            break
        last = page[-1]
        rows = conn.execute(
            sa.select(resource.c.res_id, resource.c.content).where(resource.c.res_type == "Patient", resource.c.res_id.in_(page))
        ).all()
        for res_id, content in rows:
            source = ((content or {}).get("meta") or {}).get("source") or ""
            if source.startswith(_SITE_PREFIX):
                conn.execute(job.update().where(job.c.patient_id == res_id).values(site_code=source[len(_SITE_PREFIX):]))


def downgrade() -> None:
    op.drop_index("ix_verification_job_site_code", table_name="verification_job")
    with op.batch_alter_table("verification_job", schema=None) as batch_op:
        batch_op.drop_column("site_code")
