"""An experiment document checked against what the engine runs: the services it names exist (a scaled one is
managed), every step starts before the load ends, and the load and faults stay within the engine's bounds.

Fields are named as the API names a body's fields (`faults[2].atS`); every problem is reported at once.
"""

from __future__ import annotations

from contract.errors import ValidationFailed
from contract.experiments import ExperimentDocument, ScalingStep
from contract.loadtest import LoadTestStart
from engine.fleet.registry import Registry
from engine.loadtest.manager import LoadTestLimits

__all__ = ["check_document", "load_start"]


def load_start(document: ExperimentDocument) -> LoadTestStart:
    """The load phase as a load test's start request."""
    load = document.load
    return LoadTestStart(concurrentUsers=load.users, targetService=load.service, startRps=load.startRps,
                         stages=list(load.stages), requests=list(load.requests), routeKey=load.routeKey)


def check_document(document: ExperimentDocument, registry: Registry, limits: LoadTestLimits,
                   max_fault_ms: float) -> None:
    """ValidationFailed (422) naming every field the fleet or the bounds refuse; nothing when the document fits."""
    problems: list[dict[str, str]] = []

    def service(field: str, name: str, *, managed: bool = False) -> None:
        spec = registry.by_name(name)
        if spec is None:
            problems.append({"field": field, "message": f"no registered service named {name!r}"})
        elif managed and not spec.managed:
            problems.append({"field": field, "message": f"{name!r} is not managed: the engine does not run its "
                                                        "instances, so it cannot scale it"})

    load = document.load
    service("load.service", load.service)
    peak = max([load.startRps, *(s.targetRps for s in load.stages)])
    if peak <= 0:
        problems.append({"field": "load.stages", "message": "every rate is 0: no request would be sent"})
    if peak > limits.max_rps:
        problems.append({"field": "load.stages", "message": f"peak {peak:g} req/s: at most {limits.max_rps:g} "
                                                            "(MAX_RPS)"})
    if load.duration_s > limits.max_duration_s:
        problems.append({"field": "load.stages", "message": f"{load.duration_s:g} s in all: at most "
                                                            f"{limits.max_duration_s:g} s (MAX_DURATION)"})
    if load.users > limits.max_users:
        problems.append({"field": "load.users", "message": f"at most {limits.max_users} (MAX_USERS)"})
    for i, step in enumerate(document.faults):
        if step.atS >= load.duration_s:
            problems.append({"field": f"faults[{i}].atS",
                             "message": f"starts at {step.atS:g} s, not before the load's end at "
                                        f"{load.duration_s:g} s"})
        if isinstance(step, ScalingStep):
            service(f"faults[{i}].service", step.service, managed=True)
            continue
        target = getattr(step.params, "serviceName", None)
        kill = getattr(step.params, "mode", None) == "kill"  # a kill needs a process the engine runs
        if target is not None or kill:
            service(f"faults[{i}].service", target or load.service, managed=kill)
        if step.durationS * 1000.0 > max_fault_ms:
            problems.append({"field": f"faults[{i}].durationS",
                             "message": f"at most {max_fault_ms / 1000.0:g} s (SIMULATION_MAX_MS)"})
    for i, probe in enumerate(document.steadyState):
        if probe.service is not None:
            service(f"steadyState[{i}].service", probe.service)
    if problems:
        raise ValidationFailed(problems, status=422)
