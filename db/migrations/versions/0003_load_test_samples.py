"""load test method, worker count and per-second samples

Revision ID: 0003
Revises: 0002
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('load_tests', sa.Column('method', sa.String(length=10), server_default='GET', nullable=False))
    op.add_column('load_tests', sa.Column('workers', sa.Integer(), server_default='1', nullable=False))
    op.create_table('load_test_samples',
    sa.Column('load_test_id', sa.Integer(), nullable=False),
    sa.Column('second', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent', sa.Integer(), nullable=False),
    sa.Column('ok', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('dropped', sa.Integer(), nullable=False),
    sa.Column('errors', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('latency', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.ForeignKeyConstraint(['load_test_id'], ['load_tests.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('load_test_id', 'second')
    )


def downgrade() -> None:
    op.drop_table('load_test_samples')
    op.drop_column('load_tests', 'workers')
    op.drop_column('load_tests', 'method')
