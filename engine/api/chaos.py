"""/api/simulate/* and /api/simulations: start, list and stop failure simulations (durations in ms)."""

from __future__ import annotations

from contract.chaos import (
    DatabaseOverloadStart,
    MemoryLeakStart,
    NetworkLatencyStart,
    ServiceFailureStart,
    SimulationOut,
    SimulationQuery,
    StopAllOut,
)
from contract.roles import Role
from engine.api.context import runtime
from engine.api.routing import ApiBlueprint

__all__ = ["api"]

api = ApiBlueprint("chaos", tag="failure simulation")
_STARTED = (201, SimulationOut)
_ERRORS = (400, 409, 422, 503)


@api.route("POST", "/api/simulate/service-failure", summary="Fail a service's requests, or kill an instance",
           role=Role.OPERATOR, body=ServiceFailureStart, ok=_STARTED, errors=_ERRORS)
def service_failure(body: ServiceFailureStart) -> SimulationOut:
    """Connection errors (or statusCode) on a share of requests, or mode kill on a managed service."""
    return runtime().chaos.service_failure(
        body.serviceName, body.duration, probability=body.probability, status=body.statusCode, mode=body.mode,
        silence=body.silence,
    )


@api.route("POST", "/api/simulate/network-latency", summary="Delay requests to a service (or to all)",
           role=Role.OPERATOR, body=NetworkLatencyStart, ok=_STARTED, errors=_ERRORS)
def network_latency(body: NetworkLatencyStart) -> SimulationOut:
    """latency ± jitter ms before a share of the requests."""
    return runtime().chaos.network_latency(
        body.latency, body.duration, body.serviceName, jitter_ms=body.jitter, probability=body.probability,
        silence=body.silence,
    )


@api.route("POST", "/api/simulate/database-overload", summary="Busy the engine's database with real queries",
           role=Role.OPERATOR, body=DatabaseOverloadStart, ok=_STARTED, errors=_ERRORS)
def database_overload(body: DatabaseOverloadStart) -> SimulationOut:
    """CPU-heavy statements on 1/3/6 connections (high also holds a lock the engine's writes need)."""
    return runtime().chaos.database_overload(body.duration, body.intensity)


@api.route("POST", "/api/simulate/memory-leak", summary="Allocate memory in the engine at a rate, up to a cap",
           role=Role.OPERATOR, body=MemoryLeakStart, ok=_STARTED, errors=_ERRORS)
def memory_leak(body: MemoryLeakStart) -> SimulationOut:
    """rate MB/s, held to MEMORY_LEAK_CAP_MB, freed at the end."""
    return runtime().chaos.memory_leak(body.duration, body.rate)


@api.route("POST", "/api/simulate/stop-all", summary="End every active simulation now", role=Role.OPERATOR,
           ok=(200, StopAllOut), errors=(503,))
def stop_all() -> StopAllOut:
    """Faults lifted, memory freed, overload statements cancelled."""
    n = runtime().chaos.stop_all()
    return StopAllOut(message=f"{n} simulation(s) stopped", stopped=n)


@api.route("POST", "/api/simulations/<int:simulation_id>/stop", summary="End one active simulation now",
           role=Role.OPERATOR, ok=(200, SimulationOut), errors=(404, 409, 503))
def stop_one(simulation_id: int) -> SimulationOut:
    """404 unknown id, 409 when it is not active."""
    return runtime().chaos.stop(simulation_id)


@api.route("GET", "/api/simulations", summary="Simulations, newest first", role=Role.VIEWER,
           query=SimulationQuery, ok=(200, list[SimulationOut]), errors=(503,))
def simulations(query: SimulationQuery) -> list[SimulationOut]:
    """Active ones carry remainingMs."""
    return runtime().chaos.list(query.limit)
