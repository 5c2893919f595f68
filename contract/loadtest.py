"""Load tests: the start request, the run's status, its per-second samples and latency percentiles."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, StringConstraints, model_serializer

from contract.requests import Name, StrictModel

__all__ = [
    "LatencyOut",
    "LatencyPairOut",
    "LoadTestDetailOut",
    "LoadTestOut",
    "LoadTestQuery",
    "LoadTestSampleOut",
    "LoadTestStart",
    "LoadTestStatus",
]


class LoadTestStatus(StrEnum):
    """Where a load test is: idle (no run yet), running, or how it ended."""

    IDLE = "idle"
    RUNNING = "running"
    COMPLETED = "completed"
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"
    FAILED = "failed"


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
    """A load test's settings, totals and what an open-model run measures; status idle = no run yet.

    Fields never set are left out of the JSON (the idle answer is `{"status": "idle"}`); a field set to None is
    null (a stored run has every field, unknown ones null).
    """

    status: LoadTestStatus
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

    @model_serializer(mode="wrap")
    def _set_fields_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """The fields that were set (the model's field names are its JSON names)."""
        dumped: dict[str, Any] = handler(self)
        return {k: v for k, v in dumped.items() if k in self.model_fields_set}


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
    """POST /api/load-test/start (duration in seconds; path may carry a query string)."""

    concurrentUsers: int = Field(ge=1, le=1_000_000)
    requestsPerSecond: float = Field(gt=0, le=1_000_000)
    duration: float = Field(gt=0, le=1_000_000, description="seconds")
    targetService: Name | None = None
    path: Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^/[^\s#]*$")] = "/"
    method: Literal["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"] = "GET"


class LoadTestQuery(StrictModel):
    """GET /api/load-tests query string."""

    limit: int = Field(default=50, ge=1, le=500)

