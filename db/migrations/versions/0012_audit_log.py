"""audit trail: every mutating API call, append-only

A trigger refuses UPDATE, DELETE and TRUNCATE on audit_log unless the transaction has set
`mm.audit_retention = on` (SET LOCAL or set_config(..., true)); only the engine's storage maintenance does, to delete
rows past AUDIT_RETENTION_DAYS.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE audit_log (
            id bigserial PRIMARY KEY,
            at timestamptz NOT NULL,
            actor varchar(100),
            actor_role varchar(20),
            client varchar(64),
            method varchar(10) NOT NULL,
            route varchar(200) NOT NULL,
            action varchar(100),
            target varchar(200),
            outcome smallint NOT NULL,
            outcome_text varchar(200)
        )
    """)
    op.execute("CREATE INDEX ix_audit_log_at ON audit_log (at)")
    op.execute("""
        CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP IN ('DELETE', 'TRUNCATE') AND current_setting('mm.audit_retention', true) = 'on' THEN
                RETURN OLD;
            END IF;
            RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
        END
        $$
    """)
    op.execute("CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log "
               "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()")
    op.execute("CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
               "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()")


def downgrade() -> None:
    op.execute("DROP TABLE audit_log")
    op.execute("DROP FUNCTION audit_log_append_only()")
