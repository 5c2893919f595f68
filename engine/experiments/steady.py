"""Steady-state probes, before the load and after it: the service is healthy, or a short probe's p95 is under a bound.

A healthy probe reads the service's status from the health checker (every known instance healthy). A latency probe
sends `requests` GETs of its path one by one through the router (balancer, breakers, retries, faults: what traffic
meets) and compares the p95 of their latencies (ms, nearest rank) with p95BelowMs; a failed request fails the probe.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

from contract.errors import ApiError
from contract.experiments import ProbeKind, ProbeResultOut, SteadyProbe
from contract.states import HealthState
from engine.clock import Clock
from engine.fleet.registry import Registry
from engine.health.checker import aggregate
from engine.traffic.router import Router

__all__ = ["Prober", "p95", "skipped"]

Phase = Literal["before", "after"]


def p95(values: list[float]) -> float | None:
    """The nearest-rank 95th percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def skipped(probe: SteadyProbe, phase: Phase, index: int, service: str, why: str) -> ProbeResultOut:
    """A probe not run (ok None), saying why."""
    return ProbeResultOut(phase=phase, index=index, kind=probe.kind, service=service, ok=None, figure=None,
                          detail=f"not run: {why}")


class Prober:
    """Runs steady-state probes on the engine loop."""

    def __init__(self, registry: Registry, router: Router, health_of: Callable[[int], HealthState],
                 clock: Clock) -> None:
        self._registry = registry
        self._router = router
        self._health_of = health_of
        self._clock = clock

    async def probe(self, probe: SteadyProbe, phase: Phase, index: int, default_service: str) -> ProbeResultOut:
        """One probe's outcome."""
        service = probe.service or default_service
        spec = self._registry.by_name(service)
        if spec is None:
            return ProbeResultOut(phase=phase, index=index, kind=probe.kind, service=service, ok=False, figure=None,
                                  detail=f"no registered service named {service!r}")
        if probe.kind is ProbeKind.HEALTHY:
            state = aggregate(self._health_of(i.id) for i in spec.instances)
            return ProbeResultOut(phase=phase, index=index, kind=probe.kind, service=service,
                                  ok=state is HealthState.HEALTHY, figure=None, detail=f"{service} is {state.value}")
        return await self._latency(probe, phase, index, service)

    async def _latency(self, probe: SteadyProbe, phase: Phase, index: int, service: str) -> ProbeResultOut:
        path, _, query = probe.path.partition("?")
        latencies: list[float] = []
        failures: dict[str, int] = {}
        for _ in range(probe.requests):
            began = self._clock.monotonic()
            error: str | None = None
            try:
                upstream = await self._router.send(service, "GET", path, query=query)
                if upstream.status >= 400:
                    error = f"http_{upstream.status}"
            except ApiError as exc:
                error = type(exc).__name__
            latencies.append((self._clock.monotonic() - began) * 1000.0)
            if error is not None:
                failures[error] = failures.get(error, 0) + 1
        figure = p95(latencies)
        bound = probe.p95BelowMs or 0.0
        shown = "n/a" if figure is None else f"{figure:.1f} ms"
        detail = f"p95 of {probe.requests} GET {probe.path}: {shown} (bound {bound:g} ms)"
        ok = figure is not None and figure < bound and not failures
        if failures:
            detail += "; failed: " + ", ".join(f"{n} {kind}" for kind, n in sorted(failures.items()))
        return ProbeResultOut(phase=phase, index=index, kind=probe.kind, service=service, ok=ok,
                              figure=None if figure is None else round(figure, 3), detail=detail)
