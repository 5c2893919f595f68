"""The metrics table's daily partitions: list them, create a day's (moving strays out of DEFAULT), drop one."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

__all__ = ["PARENT", "Partition", "create_day", "day_of", "drop", "list_partitions",
           "partition_name", "shard_status"]

PARENT = "metrics"
_NAME = re.compile(r"^metrics_p(\d{8})$")
_BOUND = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


@dataclass(frozen=True)
class Partition:
    """One partition of the metrics table; range None for the DEFAULT partition, rows None if never analysed."""

    name: str
    start: datetime | None
    end: datetime | None
    row_estimate: int | None
    size_bytes: int

    @property
    def is_default(self) -> bool:
        """Whether this is the DEFAULT partition (rows outside every day's range)."""
        return self.start is None


def partition_name(day: date) -> str:
    """metrics_pYYYYMMDD."""
    return f"metrics_p{day:%Y%m%d}"


def day_of(name: str) -> date | None:
    """The day a daily partition holds, from its name; None for other tables."""
    match = _NAME.match(name)
    return datetime.strptime(match.group(1), "%Y%m%d").date() if match else None


def _bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


def list_partitions(session: Session) -> list[Partition]:
    """Every partition of metrics, oldest range first, DEFAULT last."""
    session.execute(text("SET LOCAL timezone = 'UTC'"))  # bounds are printed in the session's zone
    rows = session.execute(text("""
        SELECT c.relname, pg_get_expr(c.relpartbound, c.oid),
               -- live rows as the statistics system counts inserts and deletes; when it knows nothing (a
               -- crash resets it), the planner's estimate: rows per page at the last ANALYZE times the pages now
               CASE WHEN st.n_live_tup > 0 THEN st.n_live_tup
                    WHEN c.relpages > 0 AND c.reltuples >= 0 THEN round(c.reltuples / c.relpages
                         * (pg_relation_size(c.oid) / current_setting('block_size')::int))
                    WHEN pg_relation_size(c.oid) = 0 THEN 0
                    ELSE -1 END::bigint,
               pg_total_relation_size(c.oid)
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        LEFT JOIN pg_stat_user_tables st ON st.relid = c.oid
        WHERE i.inhparent = CAST(:parent AS regclass)
    """), {"parent": PARENT}).all()
    parts = []
    for name, bound, tuples, size in rows:
        match = _BOUND.search(bound or "")
        start = _timestamp(match.group(1)) if match else None
        end = _timestamp(match.group(2)) if match else None
        estimate = int(tuples) if tuples >= 0 else None  # -1: rows there, never counted nor analysed
        parts.append(Partition(name, start, end, estimate, int(size)))
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(parts, key=lambda p: p.start or far)


def _timestamp(literal: str) -> datetime:
    # PostgreSQL prints '2026-11-29 00:00:00+00'; fromisoformat wants the offset as +00:00
    if re.search(r"[+-]\d\d$", literal):
        literal += ":00"
    return datetime.fromisoformat(literal).astimezone(UTC)


def create_day(session: Session, day: date) -> bool:
    """Create the day's partition unless it exists; rows of that day waiting in DEFAULT move into it.

    Returns whether a partition was created. PostgreSQL refuses a new partition whose range holds
    rows in DEFAULT, so those rows go to the new table first, which is then attached.
    """
    name = partition_name(day)
    exists = session.execute(text("SELECT to_regclass(:n) IS NOT NULL"), {"n": name}).scalar_one()
    if exists:
        return False
    start, end = _bounds(day)
    span = {"start": start, "end": end}
    session.execute(text("SET LOCAL lock_timeout = '5s'"))  # never stall the writer for long
    strays = session.execute(
        text('SELECT EXISTS (SELECT 1 FROM metrics_default WHERE "timestamp" >= :start AND "timestamp" < :end)'),
        span,
    ).scalar_one()
    bound = f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
    if not strays:
        session.execute(text(f"CREATE TABLE {name} PARTITION OF {PARENT} {bound}"))
        return True
    session.execute(text(f"CREATE TABLE {name} (LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"))
    # a plain insert into the new table: the rows move, so the rollup (a trigger on the parent) must not count them
    session.execute(text(f"""
        WITH moved AS (DELETE FROM metrics_default WHERE "timestamp" >= :start AND "timestamp" < :end
                       RETURNING *)
        INSERT INTO {name} SELECT * FROM moved
    """), span)  # noqa: S608 - name is partition_name(day), digits only
    session.execute(text(f"ALTER TABLE {PARENT} ATTACH PARTITION {name} {bound}"))
    return True


def drop(session: Session, partition: Partition) -> None:
    """Drop one daily partition and its rows (retention); the DEFAULT partition is never dropped."""
    if day_of(partition.name) is None:
        raise ValueError(f"{partition.name!r} is not a daily partition of {PARENT}")
    session.execute(text("SET LOCAL lock_timeout = '5s'"))
    session.execute(text(f"DROP TABLE {partition.name}"))


def shard_status(partition: Partition, now: datetime, retention: timedelta) -> str:
    """default | future | active | sealed (past, kept) | expired (the next run drops it)."""
    if partition.start is None or partition.end is None:
        return "default"
    if partition.start > now:
        return "future"
    if partition.end > now:
        return "active"
    return "expired" if partition.end <= now - retention else "sealed"
