"""one image row per owner

Images were one row per content, shared by every user: uploading someone
else's picture, or asking the deterministic offline engine the same prompt,
returned their image id. Now each owner has a row of their own; the file on
disk stays shared (content-addressed).

Each existing row stays with the user whose message used it first (their ids
and URLs keep working); every other user of the picture gets a copy, and their
messages and conversation thumbnails are pointed at it (the shared id they may
have kept answers them 404 from now on; the history gives the new one). Rows no message uses
are dropped (their files are left alone), and so is a thumbnail that names a
picture none of its conversation owner's messages use. Downgrade merges the
copies back.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 10:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


# Set-based, so the time grows with the history, not with how many pictures
# are shared. Every lookup below goes through a primary key or an index.

# The owner of a row: the user whose message used it first (message ids grow).
FIRST_OWNER = """
UPDATE images SET user_id = (
    SELECT c.user_id FROM messages m
    JOIN conversations c ON c.id = m.conversation_id
    WHERE m.id = (SELECT MIN(mi.message_id) FROM message_images mi WHERE mi.image_id = images.id)
)
"""
# A row for every other user of a picture, dated by their own first use.
COPIES = """
INSERT INTO images (user_id, sha256, mime, width, height, byte_size, created_at)
SELECT c.user_id, i.sha256, i.mime, i.width, i.height, i.byte_size, MIN(m.created_at)
FROM images i
JOIN message_images mi ON mi.image_id = i.id
JOIN messages m ON m.id = mi.message_id
JOIN conversations c ON c.id = m.conversation_id
WHERE c.user_id != i.user_id
GROUP BY i.id, c.user_id, i.sha256, i.mime, i.width, i.height, i.byte_size
ORDER BY i.id, c.user_id
"""
# Each link to a picture that now has several rows goes to its conversation
# owner's row (a link that is the owner's already finds its own row).
RELINK_MESSAGES = """
UPDATE message_images SET image_id = (
    SELECT own.id FROM messages m
    JOIN conversations c ON c.id = m.conversation_id
    JOIN images linked ON linked.id = message_images.image_id
    JOIN images own ON own.sha256 = linked.sha256 AND own.user_id = c.user_id
    WHERE m.id = message_images.message_id
)
WHERE image_id IN (
    SELECT i.id FROM images i JOIN images copy ON copy.sha256 = i.sha256 AND copy.id != i.id
)
"""
# Likewise the thumbnails; one that names a picture none of the owner's
# messages use (the code never made one) becomes none, rather than keep a
# row no clean-up would ever remove.
RELINK_THUMBNAILS = """
UPDATE conversations SET last_image_id = (
    SELECT own.id FROM images linked
    JOIN images own ON own.sha256 = linked.sha256 AND own.user_id = conversations.user_id
    WHERE linked.id = conversations.last_image_id
)
WHERE last_image_id IS NOT NULL
"""


def upgrade():
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.add_column(sa.Column('user_id', sa.Integer(), nullable=True))
        batch_op.drop_constraint('uq_images_sha256', type_='unique')
        batch_op.create_unique_constraint(
            batch_op.f('uq_images_sha256_user_id'), ['sha256', 'user_id']
        )

    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        # Without statistics (a database that was just restored, say) the
        # planner answers MIN(message_id) by walking the whole primary key
        # once per image: minutes instead of a second for 20,000 images.
        bind.execute(sa.text("ANALYZE images, message_images, messages, conversations"))
    for statement in (FIRST_OWNER, COPIES, RELINK_MESSAGES, RELINK_THUMBNAILS):
        bind.execute(sa.text(statement))
    bind.execute(sa.text("DELETE FROM images WHERE user_id IS NULL"))

    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.alter_column('user_id', existing_type=sa.Integer(), nullable=False)
        batch_op.create_foreign_key(
            batch_op.f('fk_images_user_id_users'), 'users', ['user_id'], ['id'],
            ondelete='CASCADE',
        )
        batch_op.create_index('ix_images_user_id', ['user_id'], unique=False)
    _check_foreign_keys(bind)


# Downgrade: every picture's lowest id is its one row again.
KEEPER_OF = """
(SELECT MIN(k.id) FROM images k
 WHERE k.sha256 = (SELECT i.sha256 FROM images i WHERE i.id = {column}))
"""


def downgrade():
    bind = op.get_bind()
    bind.execute(sa.text(
        "UPDATE message_images SET image_id = " + KEEPER_OF.format(column='message_images.image_id')
    ))
    bind.execute(sa.text(
        "UPDATE conversations SET last_image_id = "
        + KEEPER_OF.format(column='conversations.last_image_id')
        + " WHERE last_image_id IS NOT NULL"
    ))
    bind.execute(sa.text(
        "DELETE FROM images WHERE id NOT IN (SELECT MIN(id) FROM images GROUP BY sha256)"
    ))

    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_index('ix_images_user_id')
        batch_op.drop_constraint(batch_op.f('uq_images_sha256_user_id'), type_='unique')
        batch_op.drop_constraint(batch_op.f('fk_images_user_id_users'), type_='foreignkey')
        batch_op.drop_column('user_id')
        batch_op.create_unique_constraint(batch_op.f('uq_images_sha256'), ['sha256'])
    _check_foreign_keys(bind)


def _check_foreign_keys(bind):
    """SQLite rebuilds `images` to alter it, with foreign keys off (env.py);
    make sure no reference was left dangling before the change commits."""
    if bind.dialect.name != 'sqlite':
        return
    dangling = bind.execute(sa.text("PRAGMA foreign_key_check")).all()
    if dangling:
        raise RuntimeError(f"foreign keys left dangling: {dangling[:10]}")
