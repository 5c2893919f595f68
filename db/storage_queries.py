"""Reads for the Storage page: the metrics table's partitions with their status, the oldest row kept, the rollup."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session

from db import partitions

__all__ = ["PARTITION_COLUMNS", "ROLLUP", "StorageSnapshot", "oldest_row", "rollup_usage", "storage_frame"]

ROLLUP = "metrics_1m"
PARTITION_COLUMNS = ["name", "start", "end", "status", "row_estimate", "size_bytes"]


@dataclass(frozen=True)
class StorageSnapshot:
    """The partitions (PARTITION_COLUMNS, oldest first, DEFAULT last), the oldest metrics row and the rollup, at
    `read_at`; row estimates are None where PostgreSQL has not analysed a table yet."""

    read_at: datetime
    partitions: pd.DataFrame
    oldest_row: datetime | None
    rollup_rows: int | None
    rollup_size_bytes: int


def oldest_row(session: Session, listed: list[partitions.Partition]) -> datetime | None:
    """The oldest metrics timestamp: the minimum of the oldest non-empty daily partition and of DEFAULT.

    min() over the parent would read every partition (its only time index is a BRIN, no help for min());
    reading one day, oldest first, costs one partition at most.
    """
    found = [_min_of(session, p.name) for p in listed if p.is_default]  # strays: few rows, any time
    for p in listed:
        if partitions.day_of(p.name) is not None:
            first = _min_of(session, p.name)  # an empty partition answers at once
            if first is not None:
                found.append(first)
                break
    known = [t for t in found if t is not None]
    return min(known) if known else None


def _min_of(session: Session, name: str) -> datetime | None:
    quoted = '"' + name.replace('"', '""') + '"'  # a name from pg_inherits, quoted as an identifier all the same
    value: datetime | None = session.execute(text(f'SELECT min("timestamp") FROM {quoted}')).scalar()  # noqa: S608
    return value.astimezone(UTC) if value is not None else None


def rollup_usage(session: Session) -> tuple[int | None, int]:
    """The rollup table's (row estimate, total bytes); the estimate is None until it has been analysed.

    The estimate is computed the way db.partitions does for a partition: rows per page at the last ANALYZE
    times the pages there are now, so it follows growth between ANALYZE runs.
    """
    rows, size = session.execute(text("""
        SELECT CASE WHEN c.relpages > 0 AND c.reltuples >= 0 THEN round(c.reltuples / c.relpages
                         * (pg_relation_size(c.oid) / current_setting('block_size')::int))
                    WHEN pg_relation_size(c.oid) = 0 THEN 0
                    ELSE -1 END::bigint,
               pg_total_relation_size(c.oid)
        FROM pg_class c WHERE c.oid = CAST(:name AS regclass)
    """), {"name": ROLLUP}).one()
    return (int(rows) if rows >= 0 else None), int(size)


def storage_frame(session: Session, now: datetime, retention_days: int) -> StorageSnapshot:
    """Every partition of metrics with its status under a `retention_days` retention at `now`, the oldest row
    kept and the rollup's size."""
    listed = partitions.list_partitions(session)
    retention = timedelta(days=retention_days)
    frame = pd.DataFrame(
        [[p.name, p.start, p.end, partitions.shard_status(p, now, retention), p.row_estimate, p.size_bytes]
         for p in listed],
        columns=PARTITION_COLUMNS,
    )
    frame = frame.astype({"row_estimate": "Int64", "size_bytes": "int64"})
    for column in ("start", "end"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    rollup_rows, rollup_size = rollup_usage(session)
    return StorageSnapshot(read_at=now, partitions=frame, oldest_row=oldest_row(session, listed),
                           rollup_rows=rollup_rows, rollup_size_bytes=rollup_size)
