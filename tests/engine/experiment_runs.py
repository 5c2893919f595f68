"""Runs of an experiment built by hand from the contract, for the report and comparison tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contract.experiments import (
    ExperimentDocument,
    ExperimentEventKind,
    ExperimentEventOut,
    ExperimentRunDetailOut,
    ExperimentRunStatus,
    ExperimentSecondOut,
    ProbeKind,
    ProbeResultOut,
    RunPhase,
    ThresholdMetric,
    ThresholdResultOut,
    Verdict,
)

START = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)
HOSTILE = "<script>alert(1)</script>"

DESCRIPTION = "200 ms on checkout while 50 requests/s ramp up"
DOCUMENT: dict[str, object] = {
    "name": "checkout-latency",
    "description": DESCRIPTION,
    "load": {"service": "checkout", "startRps": 10, "stages": [{"durationS": 5, "targetRps": 50},
                                                               {"durationS": 15, "targetRps": 50}]},
    "faults": [{"kind": "network-latency", "atS": 5, "durationS": 10, "params": {"latency": 200}}],
    "thresholds": ["p95 < 100", {"metric": "p99", "op": "<", "value": 150, "windowS": 3, "abortOnFail": True,
                                 "delayS": 2}, "errorRate < 1"],
    "steadyState": [{"kind": "healthy"}, {"kind": "latency", "p95BelowMs": 50}],
}


def _at(offset_s: float) -> str:
    return (START + timedelta(seconds=offset_s)).isoformat()


def _second(i: int, slow: bool) -> ExperimentSecondOut:
    planned = 10 + 8 * (i + 1) if i < 5 else 50.0
    return ExperimentSecondOut(second=i, planned=planned, sent=int(planned) - (3 if slow else 0),
                               ok=int(planned) - (1 if slow else 0), failed=1 if slow else 0,
                               dropped=3 if slow else 0, p50=205.0 if slow else 4.1, p95=231.0 if slow else 7.9,
                               p99=260.5 if slow else 11.2, errorRate=2.0 if slow else 0.0)


def halted_run(run_id: int = 7, *, hostile: bool = False) -> ExperimentRunDetailOut:
    """20 s of load, a 200 ms latency fault from 5 to 15 s, the windowed p99 threshold halting the run at 8 s."""
    mark = f" {HOSTILE}" if hostile else ""
    document = ExperimentDocument.model_validate({**DOCUMENT, "description": DESCRIPTION + mark})
    events = [
        ExperimentEventOut(at=_at(-2), atS=-2, kind=ExperimentEventKind.PHASE, title="steady state before"),
        ExperimentEventOut(at=_at(0), atS=0, kind=ExperimentEventKind.PHASE, title="load"),
        ExperimentEventOut(at=_at(0), atS=0, kind=ExperimentEventKind.STAGE, title="stage 1: to 50 requests/s"),
        ExperimentEventOut(at=_at(5), atS=5, kind=ExperimentEventKind.STAGE, title="stage 2: hold 50 requests/s"),
        ExperimentEventOut(at=_at(5), atS=5, kind=ExperimentEventKind.FAULT_START,
                           title="network-latency 200 ms on checkout" + mark, detail={"step": 0}),
        ExperimentEventOut(at=_at(8), atS=8, kind=ExperimentEventKind.THRESHOLD, title="p99 < 150 over 3 s failed",
                           detail={"index": 1, "figure": 260.5}),
        ExperimentEventOut(at=_at(8), atS=8, kind=ExperimentEventKind.HALT, title="halted: p99 < 150 over 3 s" + mark),
        ExperimentEventOut(at=_at(15), atS=15, kind=ExperimentEventKind.FAULT_END,
                           title="network-latency ended", detail={"step": 0}),
        ExperimentEventOut(at=_at(20), atS=20, kind=ExperimentEventKind.PHASE, title="steady state after"),
    ]
    return ExperimentRunDetailOut(
        id=run_id, experimentId=3, experimentName="checkout-latency" + mark, version=2,
        status=ExperimentRunStatus.HALTED, phase=RunPhase.DONE, verdict=Verdict.FAIL,
        reason="p99 < 150 over 3 s, abortOnFail after 2 s failed at 8 s" + mark,
        startedAt=_at(-2), endedAt=_at(21), loadTestId=41,
        thresholds=[
            ThresholdResultOut(index=0, expression="p95 < 100", metric=ThresholdMetric.P95, ok=False, figure=229.4,
                               failedAtS=9.0, aborted=False),
            ThresholdResultOut(index=1, expression="p99 < 150 over 3 s, abortOnFail after 2 s",
                               metric=ThresholdMetric.P99, ok=False, figure=260.5, failedAtS=8.0, aborted=True),
            ThresholdResultOut(index=2, expression="errorRate < 1", metric=ThresholdMetric.ERROR_RATE, ok=True,
                               figure=0.93, failedAtS=None, aborted=False),
        ],
        steadyState=[
            ProbeResultOut(phase="before", index=0, kind=ProbeKind.HEALTHY, service="checkout", ok=True, figure=None,
                           detail="checkout is healthy"),
            ProbeResultOut(phase="before", index=1, kind=ProbeKind.LATENCY, service="checkout", ok=True, figure=6.2,
                           detail="p95 of 20 GET /: 6.2 ms (bound 50 ms)" + mark),
            ProbeResultOut(phase="after", index=0, kind=ProbeKind.HEALTHY, service="checkout", ok=True, figure=None,
                           detail="checkout is healthy"),
            ProbeResultOut(phase="after", index=1, kind=ProbeKind.LATENCY, service="checkout", ok=None, figure=None,
                           detail="not run: the run was halted"),
        ],
        document=document,
        seconds=[_second(i, 5 <= i < 15) for i in range(20)],
        events=events,
    )


def passed_run(run_id: int = 6) -> ExperimentRunDetailOut:
    """The same experiment an earlier time, without the fault doing harm: every threshold held."""
    run = halted_run(run_id)
    thresholds = [
        run.thresholds[0].model_copy(update={"ok": True, "figure": 8.1, "failedAtS": None}),
        run.thresholds[1].model_copy(update={"ok": True, "figure": 12.0, "failedAtS": None, "aborted": False}),
        run.thresholds[2].model_copy(update={"ok": True, "figure": None}),
    ]
    return run.model_copy(update={"status": ExperimentRunStatus.COMPLETED, "verdict": Verdict.PASS, "reason": None,
                                  "thresholds": thresholds, "seconds": [_second(i, False) for i in range(20)],
                                  "events": [e for e in run.events if e.kind is not ExperimentEventKind.HALT]})
