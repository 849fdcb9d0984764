"""run owner indexes: a run's session or submission found by index (the scheduler's fair share reads the owners
of the queued and running runs on each pass)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 20:30:00
"""
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_sessions_run_id", "sessions", ["run_id"], unique=False)
    op.create_index("ix_submissions_run_id", "submissions", ["run_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_submissions_run_id", table_name="submissions")
    op.drop_index("ix_sessions_run_id", table_name="sessions")
