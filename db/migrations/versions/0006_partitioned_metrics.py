"""metrics range-partitioned by day, a 1-minute rollup, extended statistics on logs

The old metrics table is copied into the partitioned one (a partition per day it holds), the
rollup is built from it, and it is dropped. Rows outside every daily partition land in the
DEFAULT partition; the partition job moves them out when it creates their day.

Revision ID: 0006
Revises: 0005
"""

from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

COLUMNS = """
    service_name varchar(100) COLLATE "C" NOT NULL,
    "timestamp" timestamptz NOT NULL,
    bucket_seconds double precision NOT NULL,
    request_count integer NOT NULL,
    error_count integer NOT NULL,
    latency_avg_ms double precision,
    latency_p50_ms double precision,
    latency_p95_ms double precision,
    latency_p99_ms double precision,
    cpu_percent double precision,
    memory_mb double precision,
    instances_scraped integer NOT NULL
"""
NAMES = ("service_name, \"timestamp\", bucket_seconds, request_count, error_count, latency_avg_ms, latency_p50_ms, "
         "latency_p95_ms, latency_p99_ms, cpu_percent, memory_mb, instances_scraped")
# one metrics_1m row per (service, minute) of the raw rows in {source}
ROLLUP = """
    SELECT service_name, date_trunc('minute', "timestamp"), count(*), sum(bucket_seconds),
           sum(request_count), sum(error_count),
           coalesce(sum(request_count) FILTER (WHERE latency_avg_ms IS NOT NULL), 0),
           coalesce(sum(latency_avg_ms * request_count), 0), coalesce(sum(latency_p50_ms * request_count), 0),
           max(latency_p95_ms), max(latency_p99_ms),
           coalesce(sum(cpu_percent), 0), count(cpu_percent), coalesce(sum(memory_mb), 0), count(memory_mb)
    FROM {source} GROUP BY 1, 2
"""


# service names are identifiers: byte order ("C") makes every key comparison a memcmp, not a locale lookup,
# a tenth of the cost of writing a row under a UTF-8 locale


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_metrics_service_ts")
    op.execute("DROP INDEX IF EXISTS ix_metrics_timestamp")
    op.execute("ALTER TABLE metrics RENAME TO metrics_unpartitioned")
    op.execute("ALTER TABLE metrics_unpartitioned RENAME CONSTRAINT metrics_pkey TO metrics_unpartitioned_pkey")
    op.execute(f"""
        CREATE TABLE metrics ({COLUMNS},
            CONSTRAINT metrics_pkey PRIMARY KEY (service_name, "timestamp")
        ) PARTITION BY RANGE ("timestamp")
    """)
    # time-only scans (the overview's last minute) on append-only data: a BRIN costs almost nothing to keep
    op.execute('CREATE INDEX ix_metrics_timestamp_brin ON metrics USING brin ("timestamp")')
    op.execute("CREATE TABLE metrics_default PARTITION OF metrics DEFAULT")
    op.execute("""
        DO $$
        DECLARE d date;
        BEGIN
            FOR d IN SELECT DISTINCT ("timestamp" AT TIME ZONE 'UTC')::date FROM metrics_unpartitioned
                     UNION SELECT (now() AT TIME ZONE 'UTC')::date + k FROM generate_series(0, 2) AS k
            LOOP
                EXECUTE format('CREATE TABLE %I PARTITION OF metrics FOR VALUES FROM (%L) TO (%L)',
                               'metrics_p' || to_char(d, 'YYYYMMDD'),
                               d::text || ' 00:00:00+00', (d + 1)::text || ' 00:00:00+00');
            END LOOP;
        END $$
    """)
    op.execute(f"INSERT INTO metrics ({NAMES}) SELECT {NAMES} FROM metrics_unpartitioned ON CONFLICT DO NOTHING")
    op.execute("DROP TABLE metrics_unpartitioned")

    # one row per service per minute: sums and maxima, kept by a statement trigger in the transaction that
    # adds raw rows (COPY, INSERT, a backlog after an outage all simply add to their minute)
    op.execute("""
        CREATE TABLE metrics_1m (
            service_name varchar(100) COLLATE "C" NOT NULL,
            minute timestamptz NOT NULL,
            buckets integer NOT NULL,
            bucket_seconds double precision NOT NULL,
            request_count bigint NOT NULL,
            error_count bigint NOT NULL,
            latency_requests bigint NOT NULL,
            latency_sum_ms double precision NOT NULL,
            p50_sum_ms double precision NOT NULL,
            p95_max_ms double precision,
            p99_max_ms double precision,
            cpu_sum double precision NOT NULL,
            cpu_n integer NOT NULL,
            memory_sum_mb double precision NOT NULL,
            memory_n integer NOT NULL,
            CONSTRAINT metrics_1m_pkey PRIMARY KEY (service_name, minute)
        )
    """)
    op.execute("CREATE INDEX ix_metrics_1m_minute ON metrics_1m (minute)")
    op.execute(f"""
        CREATE FUNCTION metrics_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO metrics_1m {ROLLUP.format(source="new_rows")}
            ON CONFLICT (service_name, minute) DO UPDATE SET
                buckets = metrics_1m.buckets + EXCLUDED.buckets,
                bucket_seconds = metrics_1m.bucket_seconds + EXCLUDED.bucket_seconds,
                request_count = metrics_1m.request_count + EXCLUDED.request_count,
                error_count = metrics_1m.error_count + EXCLUDED.error_count,
                latency_requests = metrics_1m.latency_requests + EXCLUDED.latency_requests,
                latency_sum_ms = metrics_1m.latency_sum_ms + EXCLUDED.latency_sum_ms,
                p50_sum_ms = metrics_1m.p50_sum_ms + EXCLUDED.p50_sum_ms,
                p95_max_ms = greatest(metrics_1m.p95_max_ms, EXCLUDED.p95_max_ms),
                p99_max_ms = greatest(metrics_1m.p99_max_ms, EXCLUDED.p99_max_ms),
                cpu_sum = metrics_1m.cpu_sum + EXCLUDED.cpu_sum,
                cpu_n = metrics_1m.cpu_n + EXCLUDED.cpu_n,
                memory_sum_mb = metrics_1m.memory_sum_mb + EXCLUDED.memory_sum_mb,
                memory_n = metrics_1m.memory_n + EXCLUDED.memory_n;
            RETURN NULL;
        END $$
    """)
    op.execute("CREATE TRIGGER metrics_rollup AFTER INSERT ON metrics REFERENCING NEW TABLE AS new_rows "
               "FOR EACH STATEMENT EXECUTE FUNCTION metrics_rollup()")
    op.execute(f"INSERT INTO metrics_1m {ROLLUP.format(source='metrics')}")
    # the log filters combine source and level, which are far from independent (errors come from few sources)
    op.execute("CREATE STATISTICS IF NOT EXISTS logs_source_level (ndistinct, dependencies, mcv) "
               "ON source, level FROM logs")
    op.execute("ANALYZE metrics")
    op.execute("ANALYZE logs")


def downgrade() -> None:
    op.execute("DROP STATISTICS IF EXISTS logs_source_level")
    op.execute("DROP TABLE metrics_1m")
    op.execute("DROP FUNCTION metrics_rollup() CASCADE")
    op.execute("ALTER TABLE metrics RENAME TO metrics_partitioned")
    op.execute("ALTER TABLE metrics_partitioned RENAME CONSTRAINT metrics_pkey TO metrics_partitioned_pkey")
    op.execute(f"CREATE TABLE metrics (id bigserial PRIMARY KEY, {COLUMNS})")
    op.execute(f"INSERT INTO metrics ({NAMES}) SELECT {NAMES} FROM metrics_partitioned ORDER BY \"timestamp\"")
    op.execute("DROP TABLE metrics_partitioned")
    op.execute('CREATE INDEX ix_metrics_service_ts ON metrics (service_name, "timestamp")')
    op.execute('CREATE INDEX ix_metrics_timestamp ON metrics ("timestamp")')
