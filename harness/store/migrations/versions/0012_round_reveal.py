"""round reveal: when participants learn a round's tasks ("open": when it opens; "always": from the contest's
creation)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 21:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rounds") as batch:
        batch.add_column(sa.Column("reveal", sa.Enum("open", "always", name="reveal", native_enum=False, length=16),
                                   nullable=False, server_default="open"))


def downgrade() -> None:
    with op.batch_alter_table("rounds") as batch:
        batch.drop_column("reveal")
