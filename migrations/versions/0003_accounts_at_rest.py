"""sessions stored by hash, look-alike usernames, unique token names

- `sessions.id` now holds the sha256 of the cookie's session id. Rows made
  before hold the raw id and are deleted: everyone logs in again once.
- `users.confusable_key`: the UTS #39 skeleton of the name, unique, so a
  look-alike of an existing name is refused at sign-up. Existing users who
  already look alike keep their names; the later of them gets a key suffixed
  with its id, so each stays reachable and none blocks the other.
- A user's active tokens have distinct names: where two share one, the newer
  ones are renamed "name (#id)".

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 12:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

ACTIVE_NAME_INDEX = 'uq_api_tokens_user_id_active_name'
ACTIVE = sa.text('revoked_at IS NULL')
TOKEN_NAME_MAX = 100


def upgrade():
    bind = op.get_bind()
    bind.execute(sa.text('DELETE FROM sessions'))

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('confusable_key', sa.String(length=255), nullable=True))
    _fill_confusable_keys(bind)
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.alter_column('confusable_key', existing_type=sa.String(length=255), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_users_confusable_key'), ['confusable_key'])

    _rename_duplicate_token_names(bind)
    op.create_index(
        ACTIVE_NAME_INDEX, 'api_tokens', ['user_id', 'name'], unique=True,
        sqlite_where=ACTIVE, postgresql_where=ACTIVE,
    )


def _fill_confusable_keys(bind):
    from app.services.usernames import confusable_key

    taken = set()
    users = bind.execute(sa.text('SELECT id, username FROM users ORDER BY id')).all()
    for user_id, username in users:
        key = confusable_key(username)
        if key in taken:
            key = f'{key}#{user_id}'
        taken.add(key)
        bind.execute(
            sa.text('UPDATE users SET confusable_key = :key WHERE id = :id'),
            {'key': key, 'id': user_id},
        )


def _rename_duplicate_token_names(bind):
    rows = bind.execute(sa.text(
        'SELECT id, user_id, name FROM api_tokens WHERE revoked_at IS NULL ORDER BY id'
    )).all()
    seen = set()
    for token_id, user_id, name in rows:
        if (user_id, name) in seen:
            suffix = f' (#{token_id})'
            name = name[:TOKEN_NAME_MAX - len(suffix)] + suffix
            bind.execute(
                sa.text('UPDATE api_tokens SET name = :name WHERE id = :id'),
                {'name': name, 'id': token_id},
            )
        seen.add((user_id, name))


def downgrade():
    op.drop_index(ACTIVE_NAME_INDEX, table_name='api_tokens')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_users_confusable_key'), type_='unique')
        batch_op.drop_column('confusable_key')
    # Hashed ids mean nothing to the earlier code: everyone logs in again.
    op.get_bind().execute(sa.text('DELETE FROM sessions'))
