"""Experiments: the stored document (load stages, a fault and scaling schedule, thresholds, steady-state probes),
its runs with their verdicts, timelines and per-second figures, and the comparison of two runs.

Units: offsets and durations in seconds (`atS`, `durationS`, `delayS`, `windowS`); latency in ms; `errorRate` and
`availability` in percent; `dropped` a count of requests; `rps` requests per second achieved.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Discriminator, Field, Tag, model_validator

from contract.chaos import Intensity, SimulationKind
from contract.loadtest import LoadRequest, LoadStage
from contract.requests import Name, StrictModel

__all__ = [
    "DatabaseOverloadFault",
    "ExperimentComparisonOut",
    "ExperimentDocument",
    "ExperimentEventKind",
    "ExperimentEventOut",
    "ExperimentLoad",
    "ExperimentOut",
    "ExperimentQuery",
    "ExperimentRunDetailOut",
    "ExperimentRunOut",
    "ExperimentRunQuery",
    "ExperimentRunStatus",
    "ExperimentSecondOut",
    "ExperimentStep",
    "LatencyFault",
    "MemoryLeakFault",
    "ProbeKind",
    "ProbeResultOut",
    "RunPhase",
    "ScalingStep",
    "ServiceFailureFault",
    "SteadyProbe",
    "Threshold",
    "ThresholdComparisonOut",
    "ThresholdMetric",
    "ThresholdOp",
    "ThresholdResultOut",
    "Verdict",
    "threshold_text",
]

Seconds = Annotated[float, Field(ge=0, le=86_400, description="seconds")]
PositiveSeconds = Annotated[float, Field(gt=0, le=86_400, description="seconds")]
Share = Annotated[float, Field(gt=0, le=1, description="share of requests affected, 0..1")]


# -- the load ----------------------------------------------------------------------------------------------------


def _one_or_many(value: Any) -> Any:
    """`requests` may be one request object or a list to rotate through."""
    return [value] if isinstance(value, dict) else value


class ExperimentLoad(StrictModel):
    """Open-model load on one service: the rate ramps linearly from `startRps` through each stage's `targetRps`."""

    service: Name
    startRps: float = Field(default=0, ge=0, le=1_000_000)
    stages: list[LoadStage] = Field(min_length=1, max_length=100)
    users: int = Field(default=100, ge=1, le=1_000_000, description="cap on requests in flight")
    requests: Annotated[list[LoadRequest], BeforeValidator(_one_or_many)] = Field(
        default_factory=lambda: [LoadRequest()], min_length=1, max_length=100,
        description="one request, or a list that request k takes element k mod n of")
    routeKey: str | None = Field(default=None, max_length=200,
                                 description="X-Route-Key of each request: {n} is its number, {n%M} that mod M")

    @property
    def duration_s(self) -> float:
        """The load phase's length."""
        return sum(stage.durationS for stage in self.stages)


# -- the schedule: faults and scaling by offset ------------------------------------------------------------------


class _Step(StrictModel):
    atS: Seconds = Field(description="offset from the start of the load phase")


class _Fault(_Step):
    durationS: PositiveSeconds


class LatencyParams(StrictModel):
    """A network-latency fault: ms added to each affected request (omitted serviceName: the load's service)."""

    latency: float = Field(gt=0, le=60_000, description="milliseconds")
    jitter: float = Field(default=0, ge=0, le=60_000, description="milliseconds, uniform +/-")
    probability: Share = 1.0
    serviceName: Name | None = None


class FailureParams(StrictModel):
    """A service-failure fault: fail a share of requests (error or statusCode), or kill an instance."""

    probability: Share = 1.0
    statusCode: int | None = Field(default=None, ge=400, le=599)
    mode: Literal["error", "kill"] = "error"
    serviceName: Name | None = None


class OverloadParams(StrictModel):
    """A database-overload fault."""

    intensity: Intensity


class LeakParams(StrictModel):
    """A memory-leak fault: MB per second, held to MEMORY_LEAK_CAP_MB."""

    rate: float = Field(gt=0, le=1_000_000, description="MB per second")


class LatencyFault(_Fault):
    """Delay a service's requests from atS for durationS."""

    kind: Literal[SimulationKind.NETWORK_LATENCY]
    params: LatencyParams


class ServiceFailureFault(_Fault):
    """Fail a service's requests (or kill an instance) from atS for durationS."""

    kind: Literal[SimulationKind.SERVICE_FAILURE]
    params: FailureParams = Field(default_factory=FailureParams)


class DatabaseOverloadFault(_Fault):
    """Overload the engine's database from atS for durationS."""

    kind: Literal[SimulationKind.DATABASE_OVERLOAD]
    params: OverloadParams


class MemoryLeakFault(_Fault):
    """Leak memory in the engine from atS for durationS."""

    kind: Literal[SimulationKind.MEMORY_LEAK]
    params: LeakParams


class ScalingStep(_Step):
    """Scale a managed service to `scaleTo` instances at atS."""

    service: Name
    scaleTo: int = Field(ge=1, le=1000)


def _step_tag(value: Any) -> str | None:
    """A step with scaleTo is a scaling action; any other is a fault of its kind."""
    if isinstance(value, dict):
        return "scale" if "scaleTo" in value else value.get("kind")
    if isinstance(value, ScalingStep):
        return "scale"
    return getattr(value, "kind", None)


ExperimentStep = Annotated[
    Annotated[LatencyFault, Tag(SimulationKind.NETWORK_LATENCY)]
    | Annotated[ServiceFailureFault, Tag(SimulationKind.SERVICE_FAILURE)]
    | Annotated[DatabaseOverloadFault, Tag(SimulationKind.DATABASE_OVERLOAD)]
    | Annotated[MemoryLeakFault, Tag(SimulationKind.MEMORY_LEAK)]
    | Annotated[ScalingStep, Tag("scale")],
    Discriminator(_step_tag, custom_error_type="unknown_step",
                  custom_error_message="kind must be one of network-latency, service-failure, database-overload, "
                                       "memory-leak (or the step must have scaleTo)"),
]


# -- thresholds --------------------------------------------------------------------------------------------------


class ThresholdMetric(StrEnum):
    """What a threshold is on: corrected latency percentiles and mean (ms), error rate and availability (%),
    dropped requests (count), achieved requests per second."""

    P50 = "p50"
    P90 = "p90"
    P95 = "p95"
    P99 = "p99"
    P999 = "p999"
    MAX = "max"
    MEAN = "mean"
    ERROR_RATE = "errorRate"
    AVAILABILITY = "availability"
    DROPPED = "dropped"
    RPS = "rps"


class ThresholdOp(StrEnum):
    """How the figure must compare with the value for the threshold to pass."""

    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    EQ = "=="


_SHORT = re.compile(r"^\s*([A-Za-z0-9]+)\s*(<=|>=|==|<|>|=)\s*(-?[0-9]+(?:\.[0-9]+)?)\s*$")


def _short_form(value: Any) -> Any:
    """A threshold may be written as k6 does: "p95 < 200" (metric, comparison, value)."""
    if isinstance(value, str):
        found = _SHORT.match(value)
        if found is None:
            raise ValueError('must be an object or "<metric> <op> <value>", e.g. "p95 < 200"')
        metric, op, figure = found.groups()
        return {"metric": metric, "op": "==" if op == "=" else op, "value": float(figure)}
    return value


class _ThresholdFields(StrictModel):
    metric: ThresholdMetric
    op: ThresholdOp
    value: float = Field(ge=-1e12, le=1e12)
    windowS: int | None = Field(default=None, ge=1, le=3600,
                                description="a sliding window of this many seconds; omitted: the whole run so far")
    abortOnFail: bool = Field(default=False, description="halt the experiment when it fails")
    delayS: Seconds = Field(default=0, description="with abortOnFail: not acted on before this many seconds of load")


Threshold = Annotated[_ThresholdFields, BeforeValidator(_short_form)]


def threshold_text(t: _ThresholdFields) -> str:
    """A threshold as one line: "p95 < 200 over 10 s, abortOnFail after 5 s"."""
    text = f"{t.metric.value} {t.op.value} {t.value:g}"
    if t.windowS is not None:
        text += f" over {t.windowS} s"
    if t.abortOnFail:
        text += f", abortOnFail after {t.delayS:g} s" if t.delayS else ", abortOnFail"
    return text


# -- steady state ------------------------------------------------------------------------------------------------


class ProbeKind(StrEnum):
    """A steady-state probe: the service is healthy, or a short probe's p95 is under a bound."""

    HEALTHY = "healthy"
    LATENCY = "latency"


class SteadyProbe(StrictModel):
    """Checked before the load and again after it (omitted service: the load's service)."""

    kind: ProbeKind
    service: Name | None = None
    p95BelowMs: float | None = Field(default=None, gt=0, le=600_000)
    requests: int = Field(default=20, ge=1, le=1000, description="requests of a latency probe, sent one by one")
    path: Annotated[str, Field(min_length=1, max_length=255, pattern=r"^/[^\s#]*$")] = "/"

    @model_validator(mode="after")
    def _bound_for_latency(self) -> SteadyProbe:
        if self.kind is ProbeKind.LATENCY and self.p95BelowMs is None:
            raise ValueError("a latency probe needs p95BelowMs")
        return self


# -- the document ------------------------------------------------------------------------------------------------


class ExperimentDocument(StrictModel):
    """An experiment as stored and run: the same document through the API, the dashboard and the CLI.

    What depends on the fleet (the services exist, a scaled one is managed, every step starts before the load
    ends) is checked by the engine when the document is saved or run.
    """

    name: Name
    description: str = Field(default="", max_length=2000)
    load: ExperimentLoad
    faults: list[ExperimentStep] = Field(default_factory=list, max_length=100)
    thresholds: list[Threshold] = Field(default_factory=list, max_length=50)
    steadyState: list[SteadyProbe] = Field(default_factory=list, max_length=20)


# -- stored experiments and their runs ---------------------------------------------------------------------------


class Verdict(StrEnum):
    """An experiment run's result: every threshold and probe held, or one did not."""

    PASS = "pass"  # noqa: S105 (a verdict, not a password)
    FAIL = "fail"


class ExperimentRunStatus(StrEnum):
    """Where a run is: running, or how it ended (halted = a threshold with abortOnFail stopped it)."""

    RUNNING = "running"
    COMPLETED = "completed"
    HALTED = "halted"
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"
    FAILED = "failed"


class RunPhase(StrEnum):
    """The part of a run in progress: steady state before, load and faults, steady state after, done."""

    BEFORE = "before"
    LOAD = "load"
    AFTER = "after"
    DONE = "done"


class ExperimentOut(BaseModel):
    """A stored experiment: its latest document and version (each save adds one)."""

    id: int
    name: str
    version: int
    document: ExperimentDocument
    createdAt: str
    updatedAt: str


class ThresholdResultOut(BaseModel):
    """One threshold's outcome: ok null while nothing was measured; figure = the run's (or the worst window's)."""

    index: int
    expression: str
    metric: ThresholdMetric
    ok: bool | None
    figure: float | None
    failedAtS: float | None = Field(description="seconds into the load when it first failed")
    aborted: bool = Field(description="this threshold halted the run")


class ProbeResultOut(BaseModel):
    """One steady-state probe's outcome, before or after the load."""

    phase: Literal["before", "after"]
    index: int
    kind: ProbeKind
    service: str
    ok: bool | None
    figure: float | None = Field(description="the probe's p95 in ms (latency probes)")
    detail: str


class ExperimentEventKind(StrEnum):
    """What an event on a run's timeline is."""

    PHASE = "phase"
    STAGE = "stage"
    FAULT_START = "fault-start"
    FAULT_END = "fault-end"
    SCALE = "scale"
    THRESHOLD = "threshold"
    HALT = "halt"
    BREAKER = "breaker"
    ALERT = "alert"
    HEALTH = "health"


class ExperimentEventOut(BaseModel):
    """One event on a run's timeline; atS = seconds from the start of the load phase (negative before it)."""

    at: str
    atS: float
    kind: ExperimentEventKind
    title: str
    detail: dict[str, Any] = Field(default_factory=dict)


class ExperimentSecondOut(BaseModel):
    """One second of the load phase: what the schedule held, what was sent and how it went (latency corrected)."""

    second: int
    planned: float
    sent: int
    ok: int
    failed: int
    dropped: int
    p50: float | None
    p95: float | None
    p99: float | None
    errorRate: float | None


class ExperimentRunOut(BaseModel):
    """A run of an experiment: status, phase, verdict and each threshold's and probe's outcome."""

    id: int
    experimentId: int | None
    experimentName: str
    version: int
    status: ExperimentRunStatus
    phase: RunPhase
    verdict: Verdict | None
    reason: str | None = Field(description="why the verdict is fail, or why the run ended early")
    startedAt: str
    endedAt: str | None
    loadTestId: int | None
    thresholds: list[ThresholdResultOut]
    steadyState: list[ProbeResultOut]


class ExperimentRunDetailOut(ExperimentRunOut):
    """A run with its document, per-second figures and timeline: the JSON report."""

    document: ExperimentDocument
    seconds: list[ExperimentSecondOut]
    events: list[ExperimentEventOut]


class ThresholdComparisonOut(BaseModel):
    """One threshold in two runs: the figures, whether each held, and the change (b - a)."""

    expression: str
    a: ThresholdResultOut | None
    b: ThresholdResultOut | None
    change: float | None


class ExperimentComparisonOut(BaseModel):
    """Two runs side by side, threshold by threshold (matched by expression)."""

    a: ExperimentRunOut
    b: ExperimentRunOut
    thresholds: list[ThresholdComparisonOut]


class ExperimentQuery(StrictModel):
    """GET /api/experiments query string."""

    limit: int = Field(default=100, ge=1, le=1000)


class ExperimentRunQuery(StrictModel):
    """GET /api/experiment-runs query string."""

    limit: int = Field(default=50, ge=1, le=500)
    experimentId: int | None = Field(default=None, ge=1, le=2**31 - 1)
