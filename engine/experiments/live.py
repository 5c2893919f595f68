"""One experiment run in memory while it runs: where it is, what it measured, its events, what it started."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from contract.experiments import (
    ExperimentDocument,
    ExperimentEventKind,
    ExperimentEventOut,
    ExperimentRunDetailOut,
    ExperimentRunOut,
    ExperimentRunStatus,
    ExperimentSecondOut,
    ProbeResultOut,
    RunPhase,
    ThresholdMetric,
    ThresholdResultOut,
    Verdict,
)
from engine.experiments.thresholds import ThresholdBook

__all__ = ["EventKind", "LiveRun", "halt_reason", "probe_reason", "threshold_failure"]

EventKind = ExperimentEventKind
_UNITS = {ThresholdMetric.ERROR_RATE: " %", ThresholdMetric.AVAILABILITY: " %", ThresholdMetric.DROPPED: " dropped",
          ThresholdMetric.RPS: " req/s"}


def threshold_failure(document: ExperimentDocument, result: ThresholdResultOut) -> str:
    """A failed threshold and its figure: "p95 < 200 over 5 s failed: 312.4 ms at 21 s"."""
    t = document.thresholds[result.index]
    text = f"{t.metric.value} {t.op.value} {t.value:g}" + (f" over {t.windowS} s" if t.windowS else "")
    figure = "n/a" if result.figure is None else f"{result.figure:.1f}{_UNITS.get(t.metric, ' ms')}"
    when = "" if result.failedAtS is None else f" at {result.failedAtS:g} s"
    return f"{text} failed: {figure}{when}"


def halt_reason(document: ExperimentDocument, results: Sequence[ThresholdResultOut], failing: Sequence[int]) -> str:
    """Why a run was halted: the first threshold that halted it, with its figure."""
    return "halted: " + threshold_failure(document, results[failing[0]])


def probe_reason(probes: Sequence[ProbeResultOut]) -> str:
    """The first failed probe of a phase."""
    p = next(p for p in probes if p.ok is False)
    return f"steady state {p.phase}: {p.kind.value} probe {p.index} on {p.service} failed: {p.detail}"


@dataclass
class LiveRun:
    """A run in progress (mutated on the engine loop; the API thread reads snapshots of it)."""

    id: int
    experiment_id: int | None
    name: str
    version: int
    document: ExperimentDocument
    started_at: datetime
    book: ThresholdBook
    status: ExperimentRunStatus = ExperimentRunStatus.RUNNING
    phase: RunPhase = RunPhase.BEFORE
    verdict: Verdict | None = None
    reason: str | None = None
    ended_at: datetime | None = None
    load_test_id: int | None = None
    t0: datetime | None = None  # the load phase's start
    t0_mono: float | None = None
    probes: list[ProbeResultOut] = field(default_factory=list)
    seconds: list[ExperimentSecondOut] = field(default_factory=list)
    events: list[tuple[datetime, EventKind, str, dict[str, Any]]] = field(default_factory=list)
    halted_by: tuple[int, ...] = ()
    handles: list[asyncio.TimerHandle] = field(default_factory=list)  # steps and stage marks not yet due
    tasks: set[asyncio.Task[None]] = field(default_factory=set)  # steps under way
    sims: dict[int, int] = field(default_factory=dict)  # active simulation id -> its step's index
    faults_closed: bool = False  # a fault that starts now is ended at once
    done: threading.Event = field(default_factory=threading.Event)
    persisting: bool = False
    stored: bool = False  # its final row is written: read it from there

    @property
    def running(self) -> bool:
        """Still running (not halted, stopped or ended)."""
        return self.status is ExperimentRunStatus.RUNNING

    @property
    def load_ran(self) -> bool:
        """The load phase began."""
        return self.t0 is not None

    def event(self, at: datetime, kind: EventKind, title: str, detail: dict[str, Any] | None = None) -> None:
        """Add one event to the run's own timeline."""
        self.events.append((at, kind, title, detail or {}))

    def begin_load(self, now: datetime, mono: float) -> None:
        """The load phase starts now: the origin of every atS."""
        self.t0, self.t0_mono = now, mono

    def end_early(self, status: ExperimentRunStatus, reason: str, now: datetime, *,
                  verdict: Verdict | None = None, thresholds: Sequence[int] = ()) -> None:
        """Halted (a threshold) or stopped (by hand, by the engine's stop): the run ends now."""
        self.status, self.reason, self.verdict, self.halted_by = status, reason, verdict, tuple(thresholds)
        kind = EventKind.HALT if status is ExperimentRunStatus.HALTED else EventKind.PHASE
        self.event(now, kind, reason, {"status": status.value, "thresholds": list(thresholds)})

    def finish_early(self, status: ExperimentRunStatus, reason: str) -> None:
        """Ended without (the rest of) its load: a failed probe before it (completed, fail) or an error (failed)."""
        self.status, self.reason = status, reason
        self.verdict = Verdict.FAIL if status is ExperimentRunStatus.COMPLETED else None

    def conclude(self, now: datetime) -> None:
        """The run is over: its status, verdict and reason settled."""
        if self.status is ExperimentRunStatus.RUNNING:
            self.status = ExperimentRunStatus.COMPLETED
        if self.status is ExperimentRunStatus.COMPLETED and self.verdict is None:
            failed = [r for r in self.thresholds() if r.ok is False]
            probes = [p for p in self.probes if p.ok is False]
            self.verdict = Verdict.FAIL if failed or probes else Verdict.PASS
            if failed:
                self.reason = threshold_failure(self.document, failed[0]) + (
                    f" (and {len(failed) - 1} more)" if len(failed) > 1 else "")
            elif probes:
                self.reason = probe_reason(probes)
        self.phase, self.ended_at = RunPhase.DONE, now
        self.event(now, EventKind.PHASE, f"done: {self.status.value}"
                   + (f", {self.verdict.value}" if self.verdict else ""), {"phase": "done"})

    def thresholds(self) -> list[ThresholdResultOut]:
        """Each threshold's outcome so far; the ones that halted the run marked aborted."""
        return [r.model_copy(update={"aborted": True}) if r.index in self.halted_by else r
                for r in self.book.results()]

    def rendered_events(self) -> list[ExperimentEventOut]:
        """The run's own events with atS from the load's start (from the run's start before the load began)."""
        origin = self.t0 or self.started_at
        return [ExperimentEventOut(at=at.isoformat(), atS=round((at - origin).total_seconds(), 3), kind=kind,
                                   title=title, detail=detail) for at, kind, title, detail in list(self.events)]

    def out(self) -> ExperimentRunOut:
        """The run as the API shows it, now."""
        return ExperimentRunOut(
            id=self.id, experimentId=self.experiment_id, experimentName=self.name, version=self.version,
            status=self.status, phase=self.phase, verdict=self.verdict, reason=self.reason,
            startedAt=self.started_at.isoformat(), endedAt=None if self.ended_at is None else self.ended_at.isoformat(),
            loadTestId=self.load_test_id, thresholds=self.thresholds(), steadyState=list(self.probes))

    def detail(self) -> ExperimentRunDetailOut:
        """The run with its document, seconds and own events, now."""
        return ExperimentRunDetailOut(**self.out().model_dump(), document=self.document, seconds=list(self.seconds),
                                      events=self.rendered_events())

    def row_values(self) -> dict[str, Any]:
        """The run's row columns as they are now."""
        result = {
            "thresholds": [r.model_dump(mode="json") for r in self.thresholds()],
            "steadyState": [p.model_dump(mode="json") for p in list(self.probes)],
            "seconds": [s.model_dump(mode="json") for s in list(self.seconds)],
            "events": [e.model_dump(mode="json") for e in self.rendered_events()],
        }
        return {"status": self.status.value, "phase": self.phase.value,
                "verdict": None if self.verdict is None else self.verdict.value, "reason": self.reason,
                "ended_at": self.ended_at, "load_test_id": self.load_test_id, "result": result}
