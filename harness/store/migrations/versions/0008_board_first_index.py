"""board first index: each user's earliest best submission found by one index seek (the board's second step)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 02:20:00
"""
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

COLUMNS = ["task_id", "round_id", "user_id", "dry_run", "status", "hidden", "score", "created_at"]


def upgrade() -> None:
    op.create_index("ix_submissions_board_first", "submissions", COLUMNS, unique=False)


def downgrade() -> None:
    op.drop_index("ix_submissions_board_first", table_name="submissions")
