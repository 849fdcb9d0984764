"""board indexes: covering indexes for per-user and team boards, history and quota windows

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 10:00:00
"""
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

INDEXES = {
    "ix_submissions_board_user": ["task_id", "round_id", "user_id", "dry_run", "status", "score", "created_at",
                                  "reason"],
    "ix_submissions_board_team": ["round_id", "task_id", "team_id", "dry_run", "status", "score", "created_at",
                                  "reason"],
    "ix_submissions_user_task": ["user_id", "task_id", "created_at"],
    "ix_submissions_team_task": ["team_id", "task_id", "created_at"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "submissions", columns, unique=False)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="submissions")
