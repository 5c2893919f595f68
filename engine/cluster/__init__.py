"""Several engines on one PostgreSQL: membership and the leader.

It owns the `engines` rows (each engine registers at start, heartbeats on a connection and thread of its own,
sets stopped_at at a clean stop; one whose heartbeat is older than the lease is gone), the leader's session-level
advisory lock held on that connection, the `cluster_leader` row's fencing term, and `Leadership`, which the
singleton jobs ask before acting. Timestamps are the database's, so engines with skewed clocks agree.
"""

from __future__ import annotations

from engine.cluster.leadership import Leadership
from engine.cluster.membership import EngineIdentity, Membership
from engine.cluster.upkeep import sweep_gone_engines

__all__ = ["EngineIdentity", "Leadership", "Membership", "sweep_gone_engines"]
