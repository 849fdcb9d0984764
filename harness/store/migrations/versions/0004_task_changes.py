"""task changes: who registered, replaced or removed a task, with evaluator and data hashes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 22:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('task_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('task', sa.String(length=128), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('user', sa.String(length=128), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('old_evaluator', sa.String(length=80), nullable=True),
    sa.Column('new_evaluator', sa.String(length=80), nullable=True),
    sa.Column('old_data', sa.String(length=80), nullable=True),
    sa.Column('new_data', sa.String(length=80), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('task_changes', schema=None) as batch_op:
        batch_op.create_index('ix_task_changes_task', ['task'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('task_changes', schema=None) as batch_op:
        batch_op.drop_index('ix_task_changes_task')
    op.drop_table('task_changes')
