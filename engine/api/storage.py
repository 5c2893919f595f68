"""GET /api/shards: the metrics table's daily partitions, the retention and the per-minute rollup."""

from __future__ import annotations

from contract.responses import RollupOut, ShardOut, ShardsOut
from contract.roles import Role
from contract.states import ShardStatus
from db import partitions, storage_queries
from engine.api.context import runtime
from engine.api.routing import ApiBlueprint
from engine.runtime import Runtime

__all__ = ["api", "shards_out"]

api = ApiBlueprint("storage", tag="storage")


def shards_out(rt: Runtime) -> list[ShardOut]:
    """One entry per partition, oldest first, DEFAULT last; rowEstimate null until PostgreSQL has analysed it."""
    now = rt.clock.now()
    with rt.sessions() as session:
        parts = partitions.list_partitions(session)
    return [ShardOut(
        id=p.name,
        name=p.name,
        from_=p.start.isoformat() if p.start else None,
        to=p.end.isoformat() if p.end else None,
        rowEstimate=p.row_estimate,
        sizeBytes=p.size_bytes,
        status=ShardStatus(partitions.shard_status(p, now, rt.storage.retention)),
    ) for p in parts]


@api.route("GET", "/api/shards", summary="Daily partitions of the metrics table, the rollup, the retention",
           role=Role.VIEWER, ok=(200, ShardsOut), errors=(503,))
def shards() -> ShardsOut:
    """The partitions with their range, row estimate, size and status, plus the 1-minute rollup's size."""
    rt = runtime()
    listed = shards_out(rt)
    with rt.sessions() as session:
        rollup_rows, rollup_size = storage_queries.rollup_usage(session)
    return ShardsOut(
        table=partitions.PARENT,
        partitionBy="day (UTC)",
        retentionDays=rt.storage.retention.days,
        partitionsAhead=rt.storage.ahead_days,
        totalSizeBytes=sum(s.sizeBytes for s in listed),
        shards=listed,
        rollup=RollupOut(table=storage_queries.ROLLUP, bucket="1 minute", rowEstimate=rollup_rows,
                         sizeBytes=rollup_size),
    )
