"""moderation: hidden submissions (who, when), baseline users and teams, and the organizers' audit record

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 14:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

BOARD = ["dry_run", "status", "score", "created_at", "reason"]


def upgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.add_column(sa.Column("hidden", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("hidden_by", sa.String(128), nullable=True))
        batch.add_column(sa.Column("hidden_at", sa.DateTime(), nullable=True))
    for table in ("users", "teams"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("baseline", sa.Boolean(), nullable=False, server_default=sa.false()))
    # the board indexes stay covering: hidden entries are filtered in them too
    op.drop_index("ix_submissions_board_user", table_name="submissions")
    op.create_index("ix_submissions_board_user", "submissions",
                    ["task_id", "round_id", "user_id", *BOARD, "hidden"], unique=False)
    op.drop_index("ix_submissions_board_team", table_name="submissions")
    op.create_index("ix_submissions_board_team", "submissions", ["round_id", "task_id", "team_id", *BOARD, "hidden"],
                    unique=False, sqlite_where=sa.text("round_id IS NOT NULL"),
                    postgresql_where=sa.text("round_id IS NOT NULL"))
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("created_at", sa.DateTime(), nullable=False, index=True),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(256), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("audit_events")
    op.drop_index("ix_submissions_board_team", table_name="submissions")
    op.drop_index("ix_submissions_board_user", table_name="submissions")
    for table in ("teams", "users"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("baseline")
    with op.batch_alter_table("submissions") as batch:
        for column in ("hidden_at", "hidden_by", "hidden"):
            batch.drop_column(column)
    op.create_index("ix_submissions_board_user", "submissions", ["task_id", "round_id", "user_id", *BOARD])
    op.create_index("ix_submissions_board_team", "submissions", ["round_id", "task_id", "team_id", *BOARD],
                    sqlite_where=sa.text("round_id IS NOT NULL"), postgresql_where=sa.text("round_id IS NOT NULL"))
