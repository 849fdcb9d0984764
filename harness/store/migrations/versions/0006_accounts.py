"""accounts: server logins (a user's organizer flag, disabled flag and hashed API token)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 12:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False, unique=True),
        sa.Column("organizer", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("token_id", sa.String(32), nullable=True, unique=True),
        sa.Column("token_hash", sa.String(128), nullable=True),
        sa.Column("token_salt", sa.String(64), nullable=True),
        sa.Column("token_set_at", sa.DateTime(), nullable=True),
        sa.Column("created_by", sa.String(128), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("accounts")
