"""Storage upkeep: daily partitions (metrics, per-minute check rollup) created ahead of time, retention by
dropping whole days; health history (state changes, daily check counts) and the audit trail trimmed past their own
retentions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, text
from sqlalchemy.orm import Session, sessionmaker

from db import audit, history, partitions
from db.models import LogEntry, MetricMinute
from engine.clock import Clock
from engine.store.logs import event_logger
from engine.store.outage import UNAVAILABLE, DatabaseOutage

__all__ = ["MaintenanceReport", "StorageMaintenance"]

log = event_logger("storage")


@dataclass(frozen=True)
class MaintenanceReport:
    """What one run did."""

    created: tuple[str, ...]
    dropped: tuple[str, ...]
    deleted_rows: int  # stray raw rows, rollup minutes, log rows, health history and audit rows past the retentions


class StorageMaintenance:
    """Creates today's and the next `ahead_days` partitions of each daily table and drops those wholly older than
    the retention; health history older than `history_retention_days` (default: the retention) and audit rows older
    than `audit_retention_days` (default: kept) are deleted."""

    def __init__(self, sessions: sessionmaker[Session], clock: Clock, *, retention_days: int,
                 ahead_days: int, history_retention_days: int | None = None,
                 audit_retention_days: int | None = None) -> None:
        self._sessions = sessions
        self._clock = clock
        self.retention = timedelta(days=retention_days)
        self.history_retention = timedelta(days=history_retention_days or retention_days)
        self.audit_retention = None if audit_retention_days is None else timedelta(days=audit_retention_days)
        self.ahead_days = ahead_days
        # said under the engine's source, where an operator reads the engine's own jobs
        self._outage = DatabaseOutage("storage maintenance", event_logger("engine"), clock)

    def run_scheduled(self) -> MaintenanceReport | None:
        """run_once for the scheduled job: while the database is away, None and one warning per outage (the
        next run catches up)."""
        try:
            report = self.run_once()
        except UNAVAILABLE as exc:
            self._outage.failed(exc)
            return None
        self._outage.succeeded()
        return report

    def run_once(self) -> MaintenanceReport:
        """One round; each partition change commits on its own, so a lock timeout costs only that step."""
        now = self._clock.now()
        today = now.astimezone(UTC).date()
        created = []
        cutoff = now - self.retention
        expired: list[tuple[partitions.DailyTable, partitions.Partition]] = []
        for table in partitions.DAILY_TABLES:
            for k in range(self.ahead_days + 1):
                with self._sessions.begin() as session:
                    if partitions.create_day(session, today + timedelta(days=k), table):
                        created.append(partitions.partition_name(today + timedelta(days=k), table))
            with self._sessions() as session:
                expired += [(table, p) for p in partitions.list_partitions(session, table)
                            if p.end is not None and p.end <= cutoff]
        for table, partition in expired:
            with self._sessions.begin() as session:
                partitions.drop(session, partition, table)
        with self._sessions.begin() as session:
            deleted = self._delete_older(session, cutoff)
            deleted += history.delete_history_older(session, now - self.history_retention)
            self._analyze(session, now)
        if self.audit_retention is not None:
            with self._sessions.begin() as session:  # its own transaction: the trigger's setting lasts for it alone
                deleted += audit.delete_audit_older(session, now - self.audit_retention)
        report = MaintenanceReport(tuple(created), tuple(p.name for _, p in expired), deleted)
        if report.created or report.dropped:
            log.info("storage: created %d partition(s), dropped %d past the %d-day retention",
                     len(report.created), len(report.dropped), self.retention.days,
                     extra={"meta": {"created": list(report.created), "dropped": list(report.dropped)}})
        return report

    @staticmethod
    def _delete_older(session: Session, cutoff: datetime) -> int:
        counts = [
            session.execute(text('DELETE FROM metrics_default WHERE "timestamp" < :c'),
                            {"c": cutoff}).rowcount,  # type: ignore[attr-defined]
            session.execute(text("DELETE FROM instance_checks_1m_default WHERE minute < :c"),
                            {"c": cutoff}).rowcount,  # type: ignore[attr-defined]
            session.execute(delete(MetricMinute).where(MetricMinute.minute < cutoff)).rowcount,  # type: ignore[attr-defined]
            session.execute(delete(LogEntry).where(LogEntry.timestamp < cutoff)).rowcount,  # type: ignore[attr-defined]
        ]
        return sum(int(c) for c in counts)

    @staticmethod
    def _analyze(session: Session, now: datetime) -> None:
        # row estimates come from ANALYZE; autovacuum may not have reached a young or growing partition yet
        for table in partitions.DAILY_TABLES:
            for p in partitions.list_partitions(session, table):
                if p.row_estimate is None or (p.start is not None and p.end is not None and p.start <= now < p.end):
                    session.execute(text(f"ANALYZE {p.name}"))
        session.execute(text("ANALYZE metrics_1m"))  # small: a row per service per minute
