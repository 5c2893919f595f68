"""Stored load-test runs and their seconds as contract models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from contract.loadtest import (
    LatencyPairOut,
    LoadRequest,
    LoadStage,
    LoadTestDetailOut,
    LoadTestOut,
    LoadTestSampleOut,
    LoadTestStatus,
)
from db.models import LoadTest, LoadTestSample

__all__ = ["SUMMARY_FIELDS", "load_test_detail_out", "load_test_out", "sample_out", "shape_of"]

# the LoadTestOut fields a run keeps in its row's summary (the rest have columns of their own)
SUMMARY_FIELDS = frozenset({"achievedRps", "shortfallPercent", "elapsedSeconds", "sent", "errors", "latency"})


def shape_of(start_rps: float | None, stages: Sequence[LoadStage], requests: Sequence[LoadRequest],
             route_key: str | None) -> dict[str, Any] | None:
    """A run's shape column: the staged rate, the rotating requests and the route key it had (None: none of them)."""
    shape: dict[str, Any] = {}
    if stages:
        shape["startRps"] = start_rps or 0.0
        shape["stages"] = [s.model_dump(mode="json") for s in stages]
    if requests:
        shape["requests"] = [r.model_dump(mode="json") for r in requests]
    if route_key is not None:
        shape["routeKey"] = route_key
    return shape or None


def _shape_fields(shape: dict[str, Any] | None) -> dict[str, Any]:
    """LoadTestOut's shape fields from the column: only those the run had are set."""
    shape = shape or {}
    out: dict[str, Any] = {}
    if "stages" in shape:
        out["startRps"] = shape.get("startRps", 0.0)
        out["stages"] = [LoadStage.model_validate(s) for s in shape["stages"]]
    if "requests" in shape:
        out["requests"] = [LoadRequest.model_validate(r) for r in shape["requests"]]
    if shape.get("routeKey") is not None:
        out["routeKey"] = shape["routeKey"]
    return out


def load_test_out(row: LoadTest) -> LoadTestOut:
    """A stored run in GET /api/load-test/status's shape; what the row does not hold is None.

    In flight and backlog are 0 for a finished run and unknown (None) for a running one: only the engine running
    it has them.
    """
    summary = row.summary or {}
    live = row.status == LoadTestStatus.RUNNING
    latency = summary.get("latency")
    return LoadTestOut(
        id=row.id, status=LoadTestStatus(row.status), concurrentUsers=row.concurrent_users,
        requestsPerSecond=row.requests_per_second, duration=row.duration_s, targetService=row.target_service,
        path=row.path, method=row.method, workers=row.workers, totalRequests=row.total_requests,
        successfulRequests=row.successful_requests, failedRequests=row.failed_requests,
        droppedRequests=row.dropped_requests, startTime=row.started_at.isoformat(),
        endTime=row.ended_at.isoformat() if row.ended_at else None,
        inFlight=None if live else 0, backlog=None if live else 0,
        achievedRps=summary.get("achievedRps"), shortfallPercent=summary.get("shortfallPercent"),
        elapsedSeconds=summary.get("elapsedSeconds"), sent=summary.get("sent"), errors=summary.get("errors"),
        latency=None if latency is None else LatencyPairOut.model_validate(latency), **_shape_fields(row.shape),
    )


def sample_out(s: LoadTestSample) -> LoadTestSampleOut:
    """One stored second of a run."""
    return LoadTestSampleOut(second=s.second, at=s.at.isoformat(), sent=s.sent, ok=s.ok, failed=s.failed,
                             dropped=s.dropped, errors=s.errors, latency=LatencyPairOut.model_validate(s.latency))


def load_test_detail_out(row: LoadTest, samples: list[LoadTestSample]) -> LoadTestDetailOut:
    """A stored run with its per-second samples."""
    out = load_test_out(row)
    return LoadTestDetailOut(**{k: getattr(out, k) for k in out.model_fields_set},
                             samples=[sample_out(s) for s in samples])
