"""score intervals: each scored submission's 95% bootstrap interval (public half in a round; the private half's
too), or why it has none

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 12:50:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

FLOATS = ("score_low", "score_high", "private_low", "private_high")


def upgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        for name in FLOATS:
            batch.add_column(sa.Column(name, sa.Float(), nullable=True))
        batch.add_column(sa.Column("interval_note", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        for name in (*FLOATS, "interval_note"):
            batch.drop_column(name)
