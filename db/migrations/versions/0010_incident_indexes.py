"""incident timelines: the spans of simulations and load tests and a service's scaling changes found by time

An incident's timeline reads every source by its service (or target) and time; these tables had no index that
serves it.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX ix_simulations_started ON simulations (started_at)")
    op.execute("CREATE INDEX ix_load_tests_started ON load_tests (started_at)")
    op.execute('CREATE INDEX ix_scaling_events_service_timestamp ON scaling_events (service_name, "timestamp")')


def downgrade() -> None:
    op.execute("DROP INDEX ix_scaling_events_service_timestamp")
    op.execute("DROP INDEX ix_load_tests_started")
    op.execute("DROP INDEX ix_simulations_started")
