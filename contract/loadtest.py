"""Load tests: the start request, the run's status, its per-second samples and latency percentiles."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from contract.requests import Name, StrictModel

__all__ = [
    "LatencyOut",
    "LatencyPairOut",
    "LoadTestDetailOut",
    "LoadTestOut",
    "LoadTestQuery",
    "LoadTestSampleOut",
    "LoadTestStart",
]


class LatencyOut(BaseModel):
    """Latency percentiles in ms (null when nothing was measured)."""

    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    p999: float | None
    max: float | None
    mean: float | None


class LatencyPairOut(BaseModel):
    """Corrected (from the scheduled time) and uncorrected (from the send) latency."""

    corrected: LatencyOut
    uncorrected: LatencyOut


class LoadTestOut(BaseModel):
    """The seed's LoadTestStatus plus what an open-model run measures; status idle = no run yet."""

    status: Literal["idle", "running", "completed", "stopped", "interrupted", "failed"]
    id: int | None = None
    concurrentUsers: int | None = None
    requestsPerSecond: float | None = None
    duration: float | None = None
    targetService: str | None = None
    path: str | None = None
    method: str | None = None
    workers: int | None = None
    totalRequests: int | None = None
    successfulRequests: int | None = None
    failedRequests: int | None = None
    droppedRequests: int | None = None
    startTime: str | None = None
    endTime: str | None = None
    inFlight: int | None = None
    backlog: int | None = None
    achievedRps: float | None = None
    shortfallPercent: float | None = None
    elapsedSeconds: float | None = None
    sent: int | None = None
    errors: dict[str, int] | None = None
    latency: LatencyPairOut | None = None


class LoadTestSampleOut(BaseModel):
    """One second of a run."""

    second: int
    at: str
    sent: int
    ok: int
    failed: int
    dropped: int
    errors: dict[str, int]
    latency: LatencyPairOut


class LoadTestDetailOut(LoadTestOut):
    """A run with its per-second samples."""

    samples: list[LoadTestSampleOut]


class LoadTestStart(StrictModel):
    """POST /api/load-test/start (duration in seconds, as in the seed; path may carry a query string)."""

    concurrentUsers: int = Field(ge=1, le=1_000_000)
    requestsPerSecond: float = Field(gt=0, le=1_000_000)
    duration: float = Field(gt=0, le=1_000_000, description="seconds")
    targetService: Name | None = None
    path: Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^/[^\s#]*$")] = "/"
    method: Literal["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"] = "GET"


class LoadTestQuery(StrictModel):
    """GET /api/load-tests query string."""

    limit: int = Field(default=50, ge=1, le=500)

