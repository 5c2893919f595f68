"""alerting: rules, alerts and their state changes, silences, channels, deliveries, incidents, SLOs

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

KINDS = ("'service-down','service-degraded','error-rate','latency-p95','breaker-open','instances-below',"
         "'slo-burn','monitor-database'")
SEVERITIES = "'critical','warning','info'"


def upgrade() -> None:
    op.execute(f"""
        CREATE TABLE alert_rules (
            id serial PRIMARY KEY,
            name varchar(100) NOT NULL UNIQUE,
            kind varchar(30) NOT NULL CHECK (kind IN ({KINDS})),
            service_name varchar(100),
            threshold double precision,
            window_seconds integer NOT NULL,
            for_seconds integer NOT NULL,
            severity varchar(10) NOT NULL CHECK (severity IN ({SEVERITIES})),
            channels integer[] NOT NULL DEFAULT '{{}}',
            repeat_seconds integer,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        )
    """)
    # the current state of every alert, one row per fingerprint (rule and service); written by the engine's writer
    op.execute(f"""
        CREATE TABLE alerts (
            fingerprint varchar(64) PRIMARY KEY,
            rule_id integer NOT NULL,
            rule_name varchar(100) NOT NULL,
            kind varchar(30) NOT NULL CHECK (kind IN ({KINDS})),
            severity varchar(10) NOT NULL CHECK (severity IN ({SEVERITIES})),
            service_name varchar(100),
            state varchar(10) NOT NULL CHECK (state IN ('pending','firing','resolved')),
            silenced boolean NOT NULL DEFAULT false,
            value double precision,
            threshold double precision,
            summary text NOT NULL,
            active_at timestamptz NOT NULL,
            fired_at timestamptz,
            resolved_at timestamptz,
            last_notified_at timestamptz,
            incident_id uuid,
            updated_at timestamptz NOT NULL
        )
    """)
    op.execute("CREATE INDEX ix_alerts_state ON alerts (state)")
    # every state change of every alert, append-only: what an incident's timeline shows
    op.execute("""
        CREATE TABLE alert_events (
            id bigserial PRIMARY KEY,
            fingerprint varchar(64) NOT NULL,
            rule_id integer NOT NULL,
            rule_name varchar(100) NOT NULL,
            service_name varchar(100),
            state varchar(10) NOT NULL CHECK (state IN ('pending','firing','resolved')),
            silenced boolean NOT NULL,
            value double precision,
            at timestamptz NOT NULL,
            incident_id uuid
        )
    """)
    op.execute("CREATE INDEX ix_alert_events_service_at ON alert_events (service_name, at)")
    op.execute("CREATE INDEX ix_alert_events_incident ON alert_events (incident_id)")
    op.execute("""
        CREATE TABLE silences (
            id serial PRIMARY KEY,
            service_name varchar(100),
            rule_id integer,
            starts_at timestamptz NOT NULL,
            ends_at timestamptz NOT NULL,
            comment text NOT NULL,
            created_by varchar(100),
            simulation_id integer,
            created_at timestamptz NOT NULL DEFAULT now(),
            CHECK (service_name IS NOT NULL OR rule_id IS NOT NULL),
            CHECK (ends_at > starts_at)
        )
    """)
    op.execute("""
        CREATE TABLE alert_channels (
            id serial PRIMARY KEY,
            name varchar(100) NOT NULL UNIQUE,
            type varchar(10) NOT NULL CHECK (type IN ('webhook','slack','email','apprise')),
            config jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        )
    """)
    # one notification to one channel; the engine creates the id, so a delivery is recorded during a DB outage too
    op.execute("""
        CREATE TABLE deliveries (
            id uuid PRIMARY KEY,
            channel_id integer REFERENCES alert_channels (id) ON DELETE SET NULL,
            channel_name varchar(100) NOT NULL,
            fingerprint varchar(64),
            event varchar(10) NOT NULL CHECK (event IN ('firing','repeat','resolved','test')),
            status varchar(10) NOT NULL CHECK (status IN ('pending','retrying','delivered','failed')),
            attempts integer NOT NULL,
            last_error text,
            payload jsonb NOT NULL,
            created_at timestamptz NOT NULL,
            next_attempt_at timestamptz,
            delivered_at timestamptz
        )
    """)
    op.execute("CREATE INDEX ix_deliveries_created ON deliveries (created_at DESC)")
    op.execute("CREATE INDEX ix_deliveries_fingerprint ON deliveries (fingerprint)")
    op.execute(f"""
        CREATE TABLE incidents (
            id uuid PRIMARY KEY,
            service_name varchar(100),
            status varchar(10) NOT NULL CHECK (status IN ('open','resolved')),
            title text NOT NULL,
            severity varchar(10) NOT NULL CHECK (severity IN ({SEVERITIES})),
            started_at timestamptz NOT NULL,
            resolved_at timestamptz,
            acknowledged_at timestamptz,
            acknowledged_by varchar(100),
            expected boolean NOT NULL DEFAULT false,
            fingerprints varchar(64)[] NOT NULL DEFAULT '{{}}'
        )
    """)
    op.execute("CREATE INDEX ix_incidents_started ON incidents (started_at DESC)")
    op.execute("CREATE INDEX ix_incidents_service ON incidents (service_name, started_at)")
    op.execute("""
        CREATE TABLE incident_notes (
            id serial PRIMARY KEY,
            incident_id uuid NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
            at timestamptz NOT NULL,
            author varchar(100),
            note text NOT NULL
        )
    """)
    op.execute("CREATE INDEX ix_incident_notes_incident ON incident_notes (incident_id, at)")
    op.execute("""
        CREATE TABLE slos (
            service_id integer PRIMARY KEY REFERENCES services (id) ON DELETE CASCADE,
            availability_target double precision NOT NULL CHECK (availability_target > 0 AND availability_target < 100),
            latency_threshold_ms double precision,
            latency_target double precision,
            window_days integer NOT NULL CHECK (window_days BETWEEN 1 AND 90),
            updated_at timestamptz NOT NULL DEFAULT now()
        )
    """)
    # routed requests of services with an SLO, per minute: the SLIs over the SLO's window of days
    op.execute("""
        CREATE TABLE slo_minutes (
            service_name varchar(100) COLLATE "C" NOT NULL,
            minute timestamptz NOT NULL,
            requests integer NOT NULL,
            errors integer NOT NULL,
            slow integer NOT NULL,
            PRIMARY KEY (service_name, minute)
        )
    """)
    op.execute("ALTER TABLE simulations ADD COLUMN silence boolean NOT NULL DEFAULT false")


def downgrade() -> None:
    op.execute("ALTER TABLE simulations DROP COLUMN silence")
    for table in ("slo_minutes", "slos", "incident_notes", "incidents", "deliveries", "alert_channels", "silences",
                  "alert_events", "alerts", "alert_rules"):
        op.execute(f"DROP TABLE {table}")
