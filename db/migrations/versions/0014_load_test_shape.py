"""a load test's shape: the staged rate, rotating requests and route key it ran with (null: constant, one request)

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("load_tests", sa.Column("shape", JSONB(), nullable=True))


def downgrade() -> None:
    op.drop_column("load_tests", "shape")
