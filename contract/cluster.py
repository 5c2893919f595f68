"""Several engines on one database: the engines' membership rows and the leader, as the API answers them."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["ClusterOut", "EngineOut"]


class EngineOut(BaseModel):
    """One engine start as its membership row says (times on the database's clock)."""

    id: str = Field(description="this start's id (a new one each start)")
    name: str = Field(description="host:API port")
    host: str
    pid: int
    apiUrl: str | None = Field(description="where its REST API listens (API_HOST:API_PORT)")
    proxyUrl: str | None = Field(description="its traffic listener; null until it listens")
    startedAt: str
    heartbeatAt: str = Field(description="its last heartbeat")
    stoppedAt: str | None = Field(description="when it stopped cleanly; null while running or after a crash")
    live: bool = Field(description="not stopped and its last heartbeat younger than the lease")
    leader: bool = Field(description="it holds the leader's lock")


class ClusterOut(BaseModel):
    """This engine, the lease, the leader and every engine known (newest start first)."""

    engineId: str = Field(description="the id of the engine that answers")
    leaseSeconds: float = Field(description="CLUSTER_LEASE_S: an engine silent this long is gone")
    leaderId: str | None = Field(description="the engine holding the leader's lock, confirmed within the lease; "
                                             "null when none is")
    term: int | None = Field(description="the leader's fencing term (each new leader increments it)")
    engines: list[EngineOut]
