"""GET /api/shards: the metrics table's daily partitions (the seed's shards, made real) and the rollup."""

from __future__ import annotations

from typing import Any

from flask import jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import text

from contract.responses import ShardsOut
from contract.roles import Role
from db import partitions
from engine.api.context import runtime
from engine.api.routing import ApiBlueprint
from engine.runtime import Runtime

__all__ = ["api", "shards_json"]

api = ApiBlueprint("storage", tag="storage")


def shards_json(rt: Runtime) -> list[dict[str, Any]]:
    """One entry per partition, oldest first, DEFAULT last; rowEstimate null until PostgreSQL has analysed it."""
    now = rt.clock.now()
    with rt.sessions() as session:
        parts = partitions.list_partitions(session)
    return [{
        "id": p.name,
        "name": p.name,
        "from": p.start.isoformat() if p.start else None,
        "to": p.end.isoformat() if p.end else None,
        "rowEstimate": p.row_estimate,
        "sizeBytes": p.size_bytes,
        "status": partitions.shard_status(p, now, rt.storage.retention),
    } for p in parts]


@api.route("GET", "/api/shards", summary="Daily partitions of the metrics table, the rollup, the retention",
           role=Role.VIEWER, ok=(200, ShardsOut), errors=(503,))
def shards() -> ResponseReturnValue:
    """The partitions with their range, row estimate, size and status, plus the 1-minute rollup's size."""
    rt = runtime()
    listed = shards_json(rt)
    with rt.sessions() as session:
        rollup_rows, rollup_size = session.execute(text(
            "SELECT reltuples::bigint, pg_total_relation_size(oid) FROM pg_class WHERE oid = 'metrics_1m'::regclass"
        )).one()
    return jsonify({
        "table": partitions.PARENT,
        "partitionBy": "day (UTC)",
        "retentionDays": rt.storage.retention.days,
        "partitionsAhead": rt.storage.ahead_days,
        "totalSizeBytes": sum(s["sizeBytes"] for s in listed),
        "shards": listed,
        "rollup": {"table": "metrics_1m", "bucket": "1 minute",
                   "rowEstimate": int(rollup_rows) if rollup_rows >= 0 else None, "sizeBytes": int(rollup_size)},
    })
