"""FHIR store: resources, versions, search indexes, identifier claims

Revision ID: 0001
Revises: 
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    op.create_table('identifier_claim',
    sa.Column('res_type', sa.String(length=40), nullable=False),
    sa.Column('value', sa.String(length=255), nullable=False),
    sa.Column('system', sa.String(length=255), nullable=False),
    sa.Column('res_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('res_type', 'value', 'system', name=op.f('pk_identifier_claim'))
    )
    with op.batch_alter_table('identifier_claim', schema=None) as batch_op:
        batch_op.create_index('ix_identifier_claim_owner', ['res_type', 'res_id'], unique=False)

    op.create_table('resource',
    sa.Column('res_type', sa.String(length=40), nullable=False),
    sa.Column('res_id', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('last_updated', sa.DateTime(), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('patient_id', sa.String(length=64), nullable=True),
    sa.Column('content', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.PrimaryKeyConstraint('res_type', 'res_id', name=op.f('pk_resource'))
    )
    with op.batch_alter_table('resource', schema=None) as batch_op:
        batch_op.create_index('ix_resource_last_updated', ['res_type', 'last_updated'], unique=False)
        batch_op.create_index('ix_resource_patient', ['patient_id', 'res_type'], unique=False)

    op.create_table('resource_version',
    sa.Column('res_type', sa.String(length=40), nullable=False),
    sa.Column('res_id', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('last_updated', sa.DateTime(), nullable=False),
    sa.Column('method', sa.String(length=8), nullable=False),
    sa.Column('content', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.PrimaryKeyConstraint('res_type', 'res_id', 'version', name=op.f('pk_resource_version'))
    )
    with op.batch_alter_table('resource_version', schema=None) as batch_op:
        batch_op.create_index('ix_resource_version_type_updated', ['res_type', 'last_updated'], unique=False)

    op.create_table('sp_date',
    sa.Column('res_type', sa.String(length=40), nullable=False),
    sa.Column('res_id', sa.String(length=64), nullable=False),
    sa.Column('param', sa.String(length=40), nullable=False),
    sa.Column('start', sa.DateTime(), nullable=False),
    sa.Column('end', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('res_type', 'res_id', 'param', 'start', 'end', name=op.f('pk_sp_date'))
    )
    with op.batch_alter_table('sp_date', schema=None) as batch_op:
        batch_op.create_index('ix_sp_date_end', ['res_type', 'param', 'end'], unique=False)
        batch_op.create_index('ix_sp_date_start', ['res_type', 'param', 'start'], unique=False)

    op.create_table('sp_reference',
    sa.Column('res_type', sa.String(length=40), nullable=False),
    sa.Column('res_id', sa.String(length=64), nullable=False),
    sa.Column('param', sa.String(length=40), nullable=False),
    sa.Column('target_type', sa.String(length=40), nullable=False),
    sa.Column('target_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('res_type', 'res_id', 'param', 'target_type', 'target_id', name=op.f('pk_sp_reference'))
    )
    with op.batch_alter_table('sp_reference', schema=None) as batch_op:
        batch_op.create_index('ix_sp_reference_target', ['target_id', 'target_type', 'res_type', 'param'], unique=False)

    op.create_table('sp_string',
    sa.Column('res_type', sa.String(length=40), nullable=False),
    sa.Column('res_id', sa.String(length=64), nullable=False),
    sa.Column('param', sa.String(length=40), nullable=False),
    sa.Column('value_exact', sa.String(length=255), nullable=False),
    sa.Column('value_fold', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('res_type', 'res_id', 'param', 'value_exact', name=op.f('pk_sp_string'))
    )
    with op.batch_alter_table('sp_string', schema=None) as batch_op:
        batch_op.create_index('ix_sp_string_exact', ['res_type', 'param', 'value_exact'], unique=False)
        batch_op.create_index('ix_sp_string_fold', ['res_type', 'param', 'value_fold'], unique=False, postgresql_ops={'value_fold': 'text_pattern_ops'})

    op.create_table('sp_token',
    sa.Column('res_type', sa.String(length=40), nullable=False),
    sa.Column('res_id', sa.String(length=64), nullable=False),
    sa.Column('param', sa.String(length=40), nullable=False),
    sa.Column('system', sa.String(length=255), nullable=False),
    sa.Column('value', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('res_type', 'res_id', 'param', 'system', 'value', name=op.f('pk_sp_token'))
    )
    with op.batch_alter_table('sp_token', schema=None) as batch_op:
        batch_op.create_index('ix_sp_token_lookup', ['res_type', 'param', 'value', 'system'], unique=False)




def downgrade() -> None:
    
    with op.batch_alter_table('sp_token', schema=None) as batch_op:
        batch_op.drop_index('ix_sp_token_lookup')

    op.drop_table('sp_token')
    with op.batch_alter_table('sp_string', schema=None) as batch_op:
        batch_op.drop_index('ix_sp_string_fold', postgresql_ops={'value_fold': 'text_pattern_ops'})
        batch_op.drop_index('ix_sp_string_exact')

    op.drop_table('sp_string')
    with op.batch_alter_table('sp_reference', schema=None) as batch_op:
        batch_op.drop_index('ix_sp_reference_target')

    op.drop_table('sp_reference')
    with op.batch_alter_table('sp_date', schema=None) as batch_op:
        batch_op.drop_index('ix_sp_date_start')
        batch_op.drop_index('ix_sp_date_end')

    op.drop_table('sp_date')
    with op.batch_alter_table('resource_version', schema=None) as batch_op:
        batch_op.drop_index('ix_resource_version_type_updated')

    op.drop_table('resource_version')
    with op.batch_alter_table('resource', schema=None) as batch_op:
        batch_op.drop_index('ix_resource_patient')
        batch_op.drop_index('ix_resource_last_updated')

    op.drop_table('resource')
    with op.batch_alter_table('identifier_claim', schema=None) as batch_op:
        batch_op.drop_index('ix_identifier_claim_owner')

    op.drop_table('identifier_claim')

