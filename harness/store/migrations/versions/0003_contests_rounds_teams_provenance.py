"""contests rounds teams provenance

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 16:42:45.928715
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('contests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('rounds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contest_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('tasks', sa.JSON(), nullable=False),
    sa.Column('starts_at', sa.DateTime(), nullable=False),
    sa.Column('ends_at', sa.DateTime(), nullable=False),
    sa.Column('submit_quota', sa.Integer(), nullable=False),
    sa.Column('submit_period', sa.Float(), nullable=False),
    sa.Column('gpu_quota', sa.Integer(), nullable=True),
    sa.Column('gpu_quota_teams', sa.JSON(), nullable=False),
    sa.Column('gpu_policy', sa.Enum('wait', 'refuse', name='gpu_policy', native_enum=False, length=32), nullable=False),
    sa.Column('public_fraction', sa.Float(), nullable=False),
    sa.Column('split_seed', sa.Integer(), nullable=False),
    sa.Column('selection_limit', sa.Integer(), nullable=False),
    sa.Column('qualify', sa.JSON(), nullable=False),
    sa.Column('entry', sa.String(length=16), nullable=False),
    sa.Column('opened_at', sa.DateTime(), nullable=True),
    sa.Column('closed_at', sa.DateTime(), nullable=True),
    sa.Column('results', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['contest_id'], ['contests.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('contest_id', 'name')
    )
    op.create_table('teams',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contest_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.ForeignKeyConstraint(['contest_id'], ['contests.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('contest_id', 'name')
    )
    op.create_table('round_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('round_id', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['round_id'], ['rounds.id'], ),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('round_id', 'team_id')
    )
    op.create_table('team_members',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contest_id', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['contest_id'], ['contests.id'], ),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], ),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('contest_id', 'user_id')
    )
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('team_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('team_gpu_quota', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_runs_team_id'), ['team_id'], unique=False)
        batch_op.create_foreign_key('fk_runs_team_id', 'teams', ['team_id'], ['id'])

    with op.batch_alter_table('submissions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('team_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('round_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('private_score', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('selected', sa.Boolean(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('provenance', sa.JSON(), nullable=True))
        batch_op.create_index(batch_op.f('ix_submissions_round_id'), ['round_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_submissions_team_id'), ['team_id'], unique=False)
        batch_op.create_foreign_key('fk_submissions_team_id', 'teams', ['team_id'], ['id'])
        batch_op.create_foreign_key('fk_submissions_round_id', 'rounds', ['round_id'], ['id'])



def downgrade() -> None:
    with op.batch_alter_table('submissions', schema=None) as batch_op:
        batch_op.drop_constraint('fk_submissions_round_id', type_='foreignkey')
        batch_op.drop_constraint('fk_submissions_team_id', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_submissions_team_id'))
        batch_op.drop_index(batch_op.f('ix_submissions_round_id'))
        batch_op.drop_column('provenance')
        batch_op.drop_column('selected')
        batch_op.drop_column('private_score')
        batch_op.drop_column('round_id')
        batch_op.drop_column('team_id')

    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_constraint('fk_runs_team_id', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_runs_team_id'))
        batch_op.drop_column('team_gpu_quota')
        batch_op.drop_column('team_id')

    op.drop_table('team_members')
    op.drop_table('round_entries')
    op.drop_table('teams')
    op.drop_table('rounds')
    op.drop_table('contests')
