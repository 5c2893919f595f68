"""simulation target and measured effect

Revision ID: 0004
Revises: 0003
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('simulations', sa.Column('target', sa.String(length=100), nullable=True))
    op.add_column('simulations', sa.Column('effect', postgresql.JSONB(astext_type=sa.Text()), nullable=True))


def downgrade() -> None:
    op.drop_column('simulations', 'effect')
    op.drop_column('simulations', 'target')
