"""Load tests: the start request (a constant or staged rate, rotating requests, a route key), the run's status, its
per-second samples and latency percentiles."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    field_validator,
    model_serializer,
)

from contract.requests import Name, StrictModel

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_HEADERS",
    "MAX_HEADER_BYTES",
    "LatencyOut",
    "LatencyPairOut",
    "LoadRequest",
    "LoadStage",
    "LoadTestDetailOut",
    "LoadTestOut",
    "LoadTestQuery",
    "LoadTestSampleOut",
    "LoadTestStart",
    "LoadTestStatus",
    "route_key_parts",
]

MAX_HEADERS = 50
MAX_HEADER_BYTES = 8192  # one header's value, UTF-8
MAX_BODY_BYTES = 65536  # a request's body, UTF-8
MAX_KEY_MODULUS = 1_000_000
# written by the sender from the request itself, or meaningful for one connection only: a spec may not set them
FRAMING_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer",
                             "keep-alive"})
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_MODULUS = re.compile(r"^n%([0-9]{1,7})$")

LoadPath = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^/[^\s#]*$")]
LoadMethod = Literal["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


def route_key_parts(pattern: str) -> tuple[str | int | None, ...]:
    """A route key pattern split into literals (str), `{n}` (None) and `{n%M}` (M); ValueError names what is wrong."""
    parts: list[str | int | None] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(pattern):
        parts.append(pattern[pos:m.start()])
        inner = m.group(1)
        if inner == "n":
            parts.append(None)
        elif (mod := _MODULUS.match(inner)) and 1 <= int(mod.group(1)) <= MAX_KEY_MODULUS:
            parts.append(int(mod.group(1)))
        else:
            raise ValueError(f"{{{inner}}} is not a placeholder: use {{n}} or {{n%M}} with M 1..{MAX_KEY_MODULUS}")
        pos = m.end()
    parts.append(pattern[pos:])
    if any(isinstance(p, str) and ("{" in p or "}" in p) for p in parts):
        raise ValueError("has a brace that opens or closes no placeholder")
    return tuple(p for p in parts if p != "")


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
    startRps: float | None = None
    stages: list[LoadStage] | None = None
    requests: list[LoadRequest] | None = None
    routeKey: str | None = None

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


class LoadStage(StrictModel):
    """One stage of a ramping rate: the rate moves linearly to targetRps (requests/s) over durationS seconds."""

    durationS: float = Field(gt=0, le=86_400)
    targetRps: float = Field(ge=0, le=1_000_000)


class LoadRequest(StrictModel):
    """One request of a rotation: request k of a run uses spec k mod the number of specs."""

    method: LoadMethod = "GET"
    path: LoadPath = "/"
    headers: dict[str, str] = Field(default_factory=dict, description=f"at most {MAX_HEADERS}; no framing or "
                                    "hop-by-hop header (Host, Content-Length, Transfer-Encoding, Connection, "
                                    "Upgrade, TE, Trailer, Keep-Alive, Proxy-*)")
    body: str | None = Field(default=None, description=f"sent as UTF-8; at most {MAX_BODY_BYTES} bytes")

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_HEADERS:
            raise ValueError(f"at most {MAX_HEADERS} headers")
        for name, val in value.items():
            low = name.lower()
            if not _TOKEN.match(name):
                raise ValueError(f"header name {name!r} is not an HTTP token")
            if low in FRAMING_HEADERS or low.startswith("proxy-"):
                raise ValueError(f"header {name!r} is written by the sender or is hop-by-hop: it may not be set")
            if any(c in val for c in "\r\n\0"):
                raise ValueError(f"header {name!r} has a CR, LF or NUL in its value")
            if len(val.encode()) > MAX_HEADER_BYTES:
                raise ValueError(f"header {name!r} is longer than {MAX_HEADER_BYTES} bytes")
        return value

    @field_validator("body")
    @classmethod
    def _body(cls, value: str | None) -> str | None:
        if value is not None and len(value.encode()) > MAX_BODY_BYTES:
            raise ValueError(f"at most {MAX_BODY_BYTES} bytes as UTF-8")
        return value


class LoadTestStart(StrictModel):
    """POST /api/load-test/start (seconds; path may carry a query string).

    A constant rate: requestsPerSecond and duration. A ramping rate: stages (and startRps, 0 when omitted) instead;
    duration is then the stages' sum and requestsPerSecond their peak. `requests` rotates request specs instead of
    path and method. `routeKey` sends `X-Route-Key` with `{n}` (the request number) and `{n%M}` filled in.
    """

    concurrentUsers: int = Field(ge=1, le=1_000_000)
    requestsPerSecond: float | None = Field(default=None, gt=0, le=1_000_000,
                                            description="required unless stages are given")
    duration: float | None = Field(default=None, gt=0, le=1_000_000,
                                   description="seconds; required unless stages are given")
    targetService: Name | None = None
    path: LoadPath = "/"
    method: LoadMethod = "GET"
    startRps: float | None = Field(default=None, ge=0, le=1_000_000, description="the rate before the first stage")
    stages: list[LoadStage] | None = Field(default=None, min_length=1, max_length=100)
    requests: list[LoadRequest] | None = Field(default=None, min_length=1, max_length=100)
    routeKey: str | None = Field(default=None, min_length=1, max_length=255,
                                 description="X-Route-Key of each request; {n} and {n%M} are filled in")

    @field_validator("routeKey")
    @classmethod
    def _route_key(cls, value: str | None) -> str | None:
        if value is not None:
            if any(c in value for c in "\r\n\0"):
                raise ValueError("has a CR, LF or NUL")
            route_key_parts(value)
        return value

    def shape_problems(self) -> list[dict[str, str]]:
        """The fields given together that exclude each other, or missing where required (empty when consistent)."""
        problems: list[dict[str, str]] = []
        given = self.model_fields_set
        if self.stages is not None:
            problems += [{"field": f, "message": "derived from stages: omit it"}
                         for f in ("requestsPerSecond", "duration") if f in given]
            peak = max([self.startRps or 0.0, *(s.targetRps for s in self.stages)])
            if peak <= 0:
                problems.append({"field": "stages", "message": "every rate is 0: no request would be sent"})
        else:
            problems += [{"field": f, "message": "required unless stages are given"}
                         for f in ("requestsPerSecond", "duration") if getattr(self, f) is None]
            if self.startRps is not None:
                problems.append({"field": "startRps", "message": "only with stages"})
        if self.requests is not None:
            problems += [{"field": f, "message": "given by requests: omit it"} for f in ("path", "method")
                         if f in given]
            if self.routeKey is not None:
                problems += [{"field": f"requests[{i}].headers", "message": "X-Route-Key is set by routeKey: omit it"}
                             for i, r in enumerate(self.requests) if any(h.lower() == "x-route-key" for h in r.headers)]
        return problems


class LoadTestQuery(StrictModel):
    """GET /api/load-tests query string."""

    limit: int = Field(default=50, ge=1, le=500)

