"""breaker thresholds and transitions; instance weights

Revision ID: 0002
Revises: 0001
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('circuit_breaker_transitions',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('service_name', sa.String(length=100), nullable=False),
    sa.Column('from_state', sa.String(length=20), nullable=False),
    sa.Column('to_state', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_breaker_transitions_service_at', 'circuit_breaker_transitions', ['service_name', 'at'], unique=False)
    op.add_column('circuit_breakers', sa.Column('failure_rate_threshold', sa.Float(), server_default='50', nullable=False))
    op.add_column('circuit_breakers', sa.Column('window_size', sa.Integer(), server_default='20', nullable=False))
    op.add_column('circuit_breakers', sa.Column('minimum_calls', sa.Integer(), server_default='10', nullable=False))
    op.add_column('circuit_breakers', sa.Column('slow_call_ms', sa.Float(), nullable=True))
    op.add_column('circuit_breakers', sa.Column('half_open_calls', sa.Integer(), server_default='1', nullable=False))
    op.add_column('instances', sa.Column('weight', sa.Integer(), server_default='1', nullable=False))


def downgrade() -> None:
    op.drop_column('instances', 'weight')
    op.drop_column('circuit_breakers', 'half_open_calls')
    op.drop_column('circuit_breakers', 'slow_call_ms')
    op.drop_column('circuit_breakers', 'minimum_calls')
    op.drop_column('circuit_breakers', 'window_size')
    op.drop_column('circuit_breakers', 'failure_rate_threshold')
    op.drop_index('ix_breaker_transitions_service_at', table_name='circuit_breaker_transitions')
    op.drop_table('circuit_breaker_transitions')
