"""several engines on one database: membership, the leader's fencing term, and who owns running work

`engines` holds one row per engine start (a new id each start): where it answers, when it started and its last
heartbeat, written on the database's clock; `stopped_at` is set by a clean stop. `cluster_leader` is a single row
(id 1): the fencing term every new leader increments, the leader's engine id, when it was elected and when it last
confirmed its advisory lock. `load_tests.engine_id` and `simulations.engine_id` name the engine that started a
run, so a start marks interrupted only the work of engines that are no longer live.

Revision ID: 0016
Revises: 0015
"""

from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE engines (
            id uuid PRIMARY KEY,
            name varchar(200) NOT NULL,
            host varchar(255) NOT NULL,
            pid integer NOT NULL,
            api_url varchar(500),
            proxy_url varchar(500),
            started_at timestamptz NOT NULL,
            heartbeat_at timestamptz NOT NULL,
            stopped_at timestamptz
        )
    """)
    op.execute("CREATE INDEX ix_engines_heartbeat_at ON engines (heartbeat_at)")
    op.execute("""
        CREATE TABLE cluster_leader (
            id smallint PRIMARY KEY CHECK (id = 1),
            term bigint NOT NULL,
            engine_id uuid,
            elected_at timestamptz,
            confirmed_at timestamptz
        )
    """)
    op.execute("INSERT INTO cluster_leader (id, term) VALUES (1, 0)")
    op.execute("ALTER TABLE load_tests ADD COLUMN engine_id uuid")
    op.execute("ALTER TABLE simulations ADD COLUMN engine_id uuid")


def downgrade() -> None:
    op.execute("ALTER TABLE simulations DROP COLUMN engine_id")
    op.execute("ALTER TABLE load_tests DROP COLUMN engine_id")
    op.execute("DROP TABLE cluster_leader")
    op.execute("DROP TABLE engines")
