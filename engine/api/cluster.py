"""GET /api/cluster: the engines sharing this database, which are live, and the leader."""

from __future__ import annotations

from contract.cluster import ClusterOut, EngineOut
from contract.roles import Role
from db import cluster
from engine.api.context import runtime
from engine.api.routing import ApiBlueprint

__all__ = ["api"]

api = ApiBlueprint("cluster", tag="cluster")


@api.route("GET", "/api/cluster", summary="The engines on this database, live or gone, and the leader",
           role=Role.VIEWER, ok=(200, ClusterOut), errors=(503,))
def cluster_state() -> ClusterOut:
    """This engine's id, the lease, the leader and its term, and every engine row judged on the database's clock."""
    rt = runtime()
    with rt.sessions() as session:
        view = cluster.cluster_view(session, rt.settings.cluster_lease_s)
    return ClusterOut(
        engineId=str(rt.engine_id),
        leaseSeconds=view.lease_s,
        leaderId=None if view.leader_id is None else str(view.leader_id),
        term=view.term,
        engines=[EngineOut(
            id=str(e.id), name=e.name, host=e.host, pid=e.pid, apiUrl=e.api_url, proxyUrl=e.proxy_url,
            startedAt=e.started_at.isoformat(), heartbeatAt=e.heartbeat_at.isoformat(),
            stoppedAt=None if e.stopped_at is None else e.stopped_at.isoformat(), live=e.live, leader=e.leader,
        ) for e in view.engines],
    )
