"""roles and invites: per-user quota overrides, last seen, invites, setup codes

- `users`: `quota_daily_images`, `quota_monthly_images`, `quota_monthly_usd`
  (NULL = the config default) and `last_seen_at`. `is_admin` and `disabled`
  exist since 0001.
- `invites`: sign-up codes an admin made (SIGNUP_POLICY=invite), stored as
  sha256 with a short prefix to tell them apart.
- `setup_codes`: the one-time codes that make the first admin, sha256 only.

Revision ID: 0004_roles_invites
Revises: 0003
Create Date: 2026-12-01 12:00:00

"""
from alembic import op
import sqlalchemy as sa



# revision identifiers, used by Alembic.
revision = '0004_roles_invites'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('quota_daily_images', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('quota_monthly_images', sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column('quota_monthly_usd', sa.Numeric(precision=12, scale=4), nullable=True)
        )
        batch_op.add_column(sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=True))

    op.create_table(
        'invites',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('prefix', sa.String(length=16), nullable=False),
        sa.Column('created_by', sa.Integer(), nullable=True),
        sa.Column('uses_total', sa.Integer(), nullable=False),
        sa.Column('uses_left', sa.Integer(), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['created_by'], ['users.id'], name=op.f('fk_invites_created_by_users'),
            ondelete='SET NULL',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_invites')),
        sa.UniqueConstraint('code_hash', name=op.f('uq_invites_code_hash')),
    )
    op.create_table(
        'setup_codes',
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('code_hash', name=op.f('pk_setup_codes')),
    )


def downgrade():
    op.drop_table('setup_codes')
    op.drop_table('invites')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('last_seen_at')
        batch_op.drop_column('quota_monthly_usd')
        batch_op.drop_column('quota_monthly_images')
        batch_op.drop_column('quota_daily_images')
