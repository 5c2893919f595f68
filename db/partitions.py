"""Tables range-partitioned by day (metrics, instance_checks_1m): list the partitions, create a day's (moving
strays out of DEFAULT), drop one. Each function takes the table; metrics when none is given."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

__all__ = ["CHECKS", "DAILY_TABLES", "METRICS", "PARENT", "DailyTable", "Partition", "create_day", "day_of", "drop",
           "list_partitions", "partition_name", "shard_status"]


@dataclass(frozen=True)
class DailyTable:
    """A table range-partitioned by day on `column`: partitions `<parent>_pYYYYMMDD` and `<parent>_default`."""

    parent: str
    column: str

    @property
    def default(self) -> str:
        """The DEFAULT partition's name."""
        return f"{self.parent}_default"

    @property
    def pattern(self) -> re.Pattern[str]:
        """Names of its daily partitions."""
        return re.compile(rf"^{self.parent}_p(\d{{8}})$")


METRICS = DailyTable("metrics", '"timestamp"')
CHECKS = DailyTable("instance_checks_1m", "minute")
DAILY_TABLES = (METRICS, CHECKS)
PARENT = METRICS.parent
_BOUND = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


@dataclass(frozen=True)
class Partition:
    """One partition of a daily-partitioned table; range None for the DEFAULT partition, rows None if never analysed."""

    name: str
    start: datetime | None
    end: datetime | None
    row_estimate: int | None
    size_bytes: int

    @property
    def is_default(self) -> bool:
        """Whether this is the DEFAULT partition (rows outside every day's range)."""
        return self.start is None


def partition_name(day: date, table: DailyTable = METRICS) -> str:
    """<parent>_pYYYYMMDD, e.g. metrics_p20260101."""
    return f"{table.parent}_p{day:%Y%m%d}"


def day_of(name: str, table: DailyTable = METRICS) -> date | None:
    """The day a daily partition of the table holds, from its name; None for other tables."""
    match = table.pattern.match(name)
    return datetime.strptime(match.group(1), "%Y%m%d").date() if match else None


def _bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


def list_partitions(session: Session, table: DailyTable = METRICS) -> list[Partition]:
    """Every partition of the table, oldest range first, DEFAULT last."""
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
    """), {"parent": table.parent}).all()
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


def create_day(session: Session, day: date, table: DailyTable = METRICS) -> bool:
    """Create the day's partition unless it exists; rows of that day waiting in DEFAULT move into it.

    Returns whether a partition was created. PostgreSQL refuses a new partition whose range holds
    rows in DEFAULT, so those rows go to the new table first, which is then attached.
    """
    name = partition_name(day, table)
    parent, column = table.parent, table.column
    exists = session.execute(text("SELECT to_regclass(:n) IS NOT NULL"), {"n": name}).scalar_one()
    if exists:
        return False
    start, end = _bounds(day)
    span = {"start": start, "end": end}
    session.execute(text("SET LOCAL lock_timeout = '5s'"))  # never stall the writer for long
    strays = session.execute(
        text(f"SELECT EXISTS (SELECT 1 FROM {table.default} WHERE {column} >= :start AND {column} < :end)"),  # noqa: S608
        span,
    ).scalar_one()
    bound = f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
    if not strays:
        session.execute(text(f"CREATE TABLE {name} PARTITION OF {parent} {bound}"))
        return True
    session.execute(text(f"CREATE TABLE {name} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"))
    # a plain insert into the new table: the rows move, so the rollup (a trigger on the parent) must not count them
    session.execute(text(f"""
        WITH moved AS (DELETE FROM {table.default} WHERE {column} >= :start AND {column} < :end
                       RETURNING *)
        INSERT INTO {name} SELECT * FROM moved
    """), span)  # noqa: S608 - name is partition_name(day), digits only; the table is a constant
    session.execute(text(f"ALTER TABLE {parent} ATTACH PARTITION {name} {bound}"))
    return True


def drop(session: Session, partition: Partition, table: DailyTable = METRICS) -> None:
    """Drop one daily partition and its rows (retention); the DEFAULT partition is never dropped."""
    if day_of(partition.name, table) is None:
        raise ValueError(f"{partition.name!r} is not a daily partition of {table.parent}")
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
