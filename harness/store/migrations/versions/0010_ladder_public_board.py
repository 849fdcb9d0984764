"""ladder public board: a round's public board may be the Ladder; each of its submissions says whether it became
its team's shown public score

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 15:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rounds") as batch:
        batch.add_column(sa.Column("public_board", sa.Enum("plain", "ladder", name="public_board", native_enum=False,
                                                           length=16), nullable=False, server_default="plain"))
    with op.batch_alter_table("submissions") as batch:
        batch.add_column(sa.Column("ladder_accepted", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.drop_column("ladder_accepted")
    with op.batch_alter_table("rounds") as batch:
        batch.drop_column("public_board")
