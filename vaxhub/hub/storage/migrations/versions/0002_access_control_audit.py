"""access control and audit trail

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    op.create_table('audit_chain_head',
    sa.Column('chain', sa.Integer(), nullable=False),
    sa.Column('last_seq', sa.Integer(), nullable=False),
    sa.Column('last_hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('chain', name=op.f('pk_audit_chain_head'))
    )
    op.create_table('audit_event',
    sa.Column('chain', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.String(length=64), nullable=False),
    sa.Column('recorded', sa.DateTime(), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('outcome', sa.String(length=2), nullable=False),
    sa.Column('client_id', sa.String(length=128), nullable=True),
    sa.Column('content', sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('chain', 'seq', name=op.f('pk_audit_event')),
    sa.UniqueConstraint('event_id', name=op.f('uq_audit_event_event_id'))
    )
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.create_index('ix_audit_event_client', ['client_id', 'recorded'], unique=False)
        batch_op.create_index('ix_audit_event_recorded', ['recorded'], unique=False)

    op.create_table('audit_patient',
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('chain', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('patient_id', 'chain', 'seq', name=op.f('pk_audit_patient'))
    )
    op.create_table('auth_client',
    sa.Column('client_id', sa.String(length=128), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('site_code', sa.String(length=64), nullable=True),
    sa.Column('scopes', sa.String(length=2000), nullable=False),
    sa.Column('roles', sa.String(length=500), nullable=False),
    sa.Column('jwks', sa.JSON(), nullable=False),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('client_id', name=op.f('pk_auth_client'))
    )
    op.create_table('auth_otp',
    sa.Column('challenge_id', sa.String(length=64), nullable=False),
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=False),
    sa.Column('code_hash', sa.String(length=128), nullable=False),
    sa.Column('expires', sa.DateTime(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('used', sa.Boolean(), nullable=False),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('challenge_id', name=op.f('pk_auth_otp'))
    )
    with op.batch_alter_table('auth_otp', schema=None) as batch_op:
        batch_op.create_index('ix_auth_otp_phone_created', ['phone', 'created'], unique=False)

    op.create_table('auth_used_jti',
    sa.Column('client_id', sa.String(length=128), nullable=False),
    sa.Column('jti', sa.String(length=255), nullable=False),
    sa.Column('expires', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('client_id', 'jti', name=op.f('pk_auth_used_jti'))
    )
    with op.batch_alter_table('auth_used_jti', schema=None) as batch_op:
        batch_op.create_index('ix_auth_used_jti_expires', ['expires'], unique=False)




def downgrade() -> None:
    
    with op.batch_alter_table('auth_used_jti', schema=None) as batch_op:
        batch_op.drop_index('ix_auth_used_jti_expires')

    op.drop_table('auth_used_jti')
    with op.batch_alter_table('auth_otp', schema=None) as batch_op:
        batch_op.drop_index('ix_auth_otp_phone_created')

    op.drop_table('auth_otp')
    op.drop_table('auth_client')
    op.drop_table('audit_patient')
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_event_recorded')
        batch_op.drop_index('ix_audit_event_client')

    op.drop_table('audit_event')
    op.drop_table('audit_chain_head')

