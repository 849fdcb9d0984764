"""board indexes: covering indexes for per-user and team boards, history and quota windows

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 10:00:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

INDEXES = {  # name: (columns, the rows it holds)
    "ix_submissions_board_user": (["task_id", "round_id", "user_id", "dry_run", "status", "score", "created_at",
                                   "reason"], None),
    "ix_submissions_board_team": (["round_id", "task_id", "team_id", "dry_run", "status", "score", "created_at",
                                   "reason"], "round_id IS NOT NULL"),
    "ix_submissions_user_task": (["user_id", "task_id", "created_at"], None),
    "ix_submissions_team_task": (["team_id", "task_id", "created_at"], None),
}


def upgrade() -> None:
    for name, (columns, where) in INDEXES.items():
        partial = {} if where is None else {"sqlite_where": sa.text(where), "postgresql_where": sa.text(where)}
        op.create_index(name, "submissions", columns, unique=False, **partial)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="submissions")
