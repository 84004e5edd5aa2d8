"""background jobs

- `jobs`: one row per generation run by a worker: who asked (user, token or
  anonymous address), the request (kind, prompt, model, payload with options
  and input files), its state (status, revision, attempts, answered,
  cancel_requested, worker and lease), its result or error, and when.

Revision ID: 0006_jobs
Revises: 0005_usage_ledger
Create Date: 2026-12-01 15:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006_jobs'
down_revision = '0005_usage_ledger'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'jobs',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('token_id', sa.Integer(), nullable=True),
        sa.Column('address', sa.String(length=64), nullable=True),
        sa.Column('request_id', sa.String(length=64), nullable=True),
        sa.Column('conversation_id', sa.Integer(), nullable=True),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('prompt', sa.Text(), nullable=False),
        sa.Column('model', sa.String(length=100), nullable=False),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('revision', sa.Integer(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('answered', sa.Boolean(), nullable=False),
        sa.Column('cancel_requested', sa.Boolean(), nullable=False),
        sa.Column('worker', sa.String(length=64), nullable=True),
        sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('retry', sa.JSON(), nullable=True),
        sa.Column('result', sa.JSON(), nullable=True),
        sa.Column('error', sa.JSON(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ['user_id'], ['users.id'], name=op.f('fk_jobs_user_id_users'), ondelete='CASCADE'
        ),
        sa.ForeignKeyConstraint(
            ['token_id'], ['api_tokens.id'], name=op.f('fk_jobs_token_id_api_tokens'),
            ondelete='SET NULL',
        ),
        sa.ForeignKeyConstraint(
            ['conversation_id'], ['conversations.id'],
            name=op.f('fk_jobs_conversation_id_conversations'), ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs')),
    )
    op.create_index('ix_jobs_status_created_at', 'jobs', ['status', 'created_at'], unique=False)
    op.create_index('ix_jobs_user_id_created_at', 'jobs', ['user_id', 'created_at'], unique=False)
    op.create_index(op.f('ix_jobs_conversation_id'), 'jobs', ['conversation_id'], unique=False)
    op.create_index(op.f('ix_jobs_finished_at'), 'jobs', ['finished_at'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_jobs_finished_at'), table_name='jobs')
    op.drop_index(op.f('ix_jobs_conversation_id'), table_name='jobs')
    op.drop_index('ix_jobs_user_id_created_at', table_name='jobs')
    op.drop_index('ix_jobs_status_created_at', table_name='jobs')
    op.drop_table('jobs')
