"""private due: a round submission scored on its public half whose private half is scored after the submit is
reported (harness.scheduler.private_half)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 04:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.add_column(sa.Column("private_due", sa.Boolean(), nullable=False, server_default="0"))
    op.create_index("ix_submissions_private_due", "submissions", ["private_due"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_submissions_private_due", table_name="submissions")
    with op.batch_alter_table("submissions") as batch:
        batch.drop_column("private_due")
