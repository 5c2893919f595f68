"""managed services (launch command, min/max, autoscaler) and scaling decisions

Revision ID: 0005
Revises: 0004
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('services', sa.Column('launch_command', sa.Text(), nullable=True))
    op.add_column('services', sa.Column('min_instances', sa.Integer(), server_default='1', nullable=False))
    op.add_column('services', sa.Column('max_instances', sa.Integer(), server_default='10', nullable=False))
    op.add_column('services', sa.Column('autoscaler', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column('scaling_events', sa.Column('source', sa.String(length=20), server_default='manual', nullable=False))
    op.add_column('scaling_events', sa.Column('metric', sa.String(length=30), nullable=True))
    op.add_column('scaling_events', sa.Column('metric_value', sa.Float(), nullable=True))
    op.add_column('scaling_events', sa.Column('target', sa.Float(), nullable=True))


def downgrade() -> None:
    for column in ('target', 'metric_value', 'metric', 'source'):
        op.drop_column('scaling_events', column)
    for column in ('autoscaler', 'max_instances', 'min_instances', 'launch_command'):
        op.drop_column('services', column)
