"""health history: instance and service state changes, per-instance check rollups per minute and per day

instance_checks_1m is range-partitioned by day like metrics (a DEFAULT partition catches rows of a
day that has no partition yet; the partition job moves them out). The transitions and the daily
rollup are small and are trimmed by DELETE.

Revision ID: 0008
Revises: 0007
"""

from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

# counts then sums: columns of 8 bytes first, so a row carries no alignment padding
ROLLUP_COLUMNS = """
    latency_sum_ms double precision NOT NULL,
    latency_max_ms double precision,
    service_id integer NOT NULL,
    instance_id integer NOT NULL,
    checks integer NOT NULL,
    up integer NOT NULL,
    degraded integer NOT NULL,
    down integer NOT NULL,
    latency_n integer NOT NULL
"""


def upgrade() -> None:
    op.execute("""
        CREATE TABLE instance_health_transitions (
            id bigserial PRIMARY KEY,
            service_id integer NOT NULL,
            instance_id integer NOT NULL,
            from_state varchar(20) NOT NULL,
            to_state varchar(20) NOT NULL,
            at timestamptz NOT NULL,
            latency_ms double precision,
            status_code integer,
            error text
        )
    """)
    op.execute("CREATE INDEX ix_instance_health_transitions_service_at ON instance_health_transitions (service_id, at)")
    op.execute("CREATE INDEX ix_instance_health_transitions_instance_at "
               "ON instance_health_transitions (instance_id, at)")
    op.execute("""
        CREATE TABLE service_health_transitions (
            id bigserial PRIMARY KEY,
            service_id integer NOT NULL,
            from_state varchar(20) NOT NULL,
            to_state varchar(20) NOT NULL,
            at timestamptz NOT NULL
        )
    """)
    op.execute("CREATE INDEX ix_service_health_transitions_service_at ON service_health_transitions (service_id, at)")
    op.execute(f"""
        CREATE TABLE instance_checks_1m (
            minute timestamptz NOT NULL, {ROLLUP_COLUMNS},
            CONSTRAINT instance_checks_1m_pkey PRIMARY KEY (service_id, minute, instance_id)
        ) PARTITION BY RANGE (minute)
    """)
    op.execute("CREATE TABLE instance_checks_1m_default PARTITION OF instance_checks_1m DEFAULT")
    op.execute("""
        DO $$
        DECLARE d date;
        BEGIN
            FOR d IN SELECT (now() AT TIME ZONE 'UTC')::date + k FROM generate_series(0, 2) AS k
            LOOP
                EXECUTE format('CREATE TABLE %I PARTITION OF instance_checks_1m FOR VALUES FROM (%L) TO (%L)',
                               'instance_checks_1m_p' || to_char(d, 'YYYYMMDD'),
                               d::text || ' 00:00:00+00', (d + 1)::text || ' 00:00:00+00');
            END LOOP;
        END $$
    """)
    op.execute(f"""
        CREATE TABLE instance_checks_1d (
            day date NOT NULL, {ROLLUP_COLUMNS},
            CONSTRAINT instance_checks_1d_pkey PRIMARY KEY (service_id, day, instance_id)
        )
    """)


def downgrade() -> None:
    op.execute("DROP TABLE instance_checks_1d")
    op.execute("DROP TABLE instance_checks_1m")
    op.execute("DROP TABLE service_health_transitions")
    op.execute("DROP TABLE instance_health_transitions")
