"""usage ledger, quota counters and reservations

- `usage_ledger`: one row per upstream attempt (who, model, size asked,
  images returned, tokens, estimated cost, billed, outcome, duration,
  request id). Rows outlive their user and token (SET NULL): the install's
  spend stays whole.
- `quota_counters`: images and micro-dollars used and reserved per subject
  ("user:7", "addr:…", "install") and period ("d:2026-12-05", "m:2026-12").
- `quota_reservations`: holds in flight, each with an expiry after which a
  sweep gives it back.

Revision ID: 0005_usage_ledger
Revises: 0004_roles_invites
Create Date: 2026-12-10 13:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0005_usage_ledger'
down_revision = '0004_roles_invites'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'usage_ledger',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('token_id', sa.Integer(), nullable=True),
        sa.Column('anon_address', sa.String(length=64), nullable=True),
        sa.Column('request_id', sa.String(length=64), nullable=True),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('model', sa.String(length=100), nullable=False),
        sa.Column('image_size', sa.String(length=10), nullable=True),
        sa.Column('images', sa.Integer(), nullable=False),
        sa.Column('prompt_tokens', sa.Integer(), nullable=False),
        sa.Column('output_tokens', sa.Integer(), nullable=False),
        sa.Column('total_tokens', sa.Integer(), nullable=False),
        sa.Column('cost_usd', sa.Numeric(precision=12, scale=6), nullable=False),
        sa.Column('billed', sa.Boolean(), nullable=False),
        sa.Column('outcome', sa.String(length=64), nullable=False),
        sa.Column('duration_ms', sa.Integer(), nullable=False),
        sa.Column('attempt', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ['user_id'], ['users.id'], name=op.f('fk_usage_ledger_user_id_users'),
            ondelete='SET NULL',
        ),
        sa.ForeignKeyConstraint(
            ['token_id'], ['api_tokens.id'], name=op.f('fk_usage_ledger_token_id_api_tokens'),
            ondelete='SET NULL',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_usage_ledger')),
    )
    op.create_index(
        op.f('ix_usage_ledger_created_at'), 'usage_ledger', ['created_at'], unique=False
    )
    op.create_index(
        'ix_usage_ledger_user_id_created_at', 'usage_ledger', ['user_id', 'created_at'],
        unique=False,
    )
    op.create_table(
        'quota_counters',
        sa.Column('subject', sa.String(length=80), nullable=False),
        sa.Column('period', sa.String(length=16), nullable=False),
        sa.Column('used_images', sa.Integer(), nullable=False),
        sa.Column('reserved_images', sa.Integer(), nullable=False),
        sa.Column('used_micro_usd', sa.BigInteger(), nullable=False),
        sa.Column('reserved_micro_usd', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('subject', 'period', name=op.f('pk_quota_counters')),
    )
    op.create_table(
        'quota_reservations',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('counters', sa.JSON(), nullable=False),
        sa.Column('images', sa.Integer(), nullable=False),
        sa.Column('micro_usd', sa.BigInteger(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_quota_reservations')),
    )
    op.create_index(
        op.f('ix_quota_reservations_expires_at'), 'quota_reservations', ['expires_at'],
        unique=False,
    )


def downgrade():
    op.drop_index(op.f('ix_quota_reservations_expires_at'), table_name='quota_reservations')
    op.drop_table('quota_reservations')
    op.drop_table('quota_counters')
    op.drop_index('ix_usage_ledger_user_id_created_at', table_name='usage_ledger')
    op.drop_index(op.f('ix_usage_ledger_created_at'), table_name='usage_ledger')
    op.drop_table('usage_ledger')
