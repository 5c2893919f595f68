"""/api/load-balancer and /api/circuit-breakers: the traffic path's live state and controls."""

from __future__ import annotations

from dataclasses import replace

from contract.errors import NotFound, ValidationFailed
from contract.responses import MessageOut
from contract.roles import Role
from contract.traffic import (
    AlgorithmChange,
    BreakerChange,
    BreakerOut,
    BreakersOut,
    BreakerState,
    LoadBalancerOut,
    PickOut,
    ResilienceOut,
)
from engine.api.context import runtime
from engine.api.routing import ApiBlueprint
from engine.runtime import Runtime
from engine.traffic.balancer import ALGORITHMS
from engine.traffic.breaker import CircuitBreaker

__all__ = ["api", "breaker_out", "breakers_of", "load_balancer_out", "resilience_out"]

api = ApiBlueprint("traffic", tag="traffic")

# API field -> BreakerConfig field
_BREAKER_FIELDS = {
    "failureThreshold": "failure_threshold", "failureRateThreshold": "failure_rate_threshold",
    "windowSize": "window_size", "minimumCalls": "minimum_calls", "slowCallMs": "slow_call_ms",
    "timeout": "open_timeout_ms", "halfOpenCalls": "half_open_calls",
}


def load_balancer_out(rt: Runtime) -> LoadBalancerOut:
    """Algorithm and per-instance picks and in-flight counts of every registered instance."""
    router = rt.router
    instances = []
    for spec in rt.registry.services():
        for inst in spec.instances:
            # read only: the router's targets belong to the engine loop; one never picked has none yet
            t = router.targets.get(inst.id)
            instances.append(PickOut(
                service=spec.name, instanceId=inst.id, url=inst.url, picks=t.picks if t else 0,
                inFlight=t.in_flight if t else 0, health=rt.health_of(inst.id),
                ejected=router.ejector.is_ejected(inst.id),
            ))
    return LoadBalancerOut(algorithm=router.algorithm, algorithms=sorted(ALGORITHMS),
                           totalPicks=sum(i.picks for i in instances), instances=instances)


def breaker_out(b: CircuitBreaker) -> BreakerOut:
    """One breaker: live state, counters and thresholds."""
    c = b.config
    return BreakerOut(
        serviceName=b.service, state=b.state, failureCount=b.failures, rejectedCount=b.rejected,
        failureRate=b.failure_rate(), lastFailure=b.last_failure.isoformat() if b.last_failure else None,
        failureThreshold=c.failure_threshold, failureRateThreshold=c.failure_rate_threshold,
        windowSize=c.window_size, minimumCalls=c.minimum_calls, slowCallMs=c.slow_call_ms,
        timeout=int(c.open_timeout_ms), halfOpenCalls=c.half_open_calls,
    )


def breakers_of(rt: Runtime) -> list[CircuitBreaker]:
    """The breaker of every registered service."""
    return [rt.breakers.get(s.name) for s in rt.registry.services()]


def resilience_out(rt: Runtime) -> ResilienceOut:
    """Retry success, fallback and timeout rates over the counters' window."""
    f = rt.resilience.figures()
    return ResilienceOut(
        windowSeconds=f.window_s, requests=f.requests, retries=f.retries,
        retrySuccessRate=f.retry_success_rate, fallbacks=f.fallbacks, fallbackRate=f.fallback_rate,
        timeouts=f.timeouts, timeoutRate=f.timeout_rate, retryBudgetRefusals=f.budget_refusals,
        ejectedInstances=len(rt.ejector.ejected()),
    )


def _api_names(message: str) -> list[dict[str, str]]:
    """A BreakerConfig complaint in the API's field names, the first field it names as `field`."""
    named = []
    for api_name, py_name in _BREAKER_FIELDS.items():
        if py_name in message:
            named.append((message.index(py_name), api_name))
            message = message.replace(py_name, api_name)
    return [{"field": min(named)[1] if named else "body", "message": message}]


def _breaker_of(rt: Runtime, service: str) -> CircuitBreaker:
    if rt.registry.by_name(service) is None:
        raise NotFound("service", service)
    return rt.breakers.get(service)


@api.route("GET", "/api/load-balancer", summary="Balancer algorithm, picks and in-flight per instance",
           role=Role.VIEWER, ok=(200, LoadBalancerOut))
def get_load_balancer() -> LoadBalancerOut:
    """The live balancer state."""
    return load_balancer_out(runtime())


@api.route("PUT", "/api/load-balancer", summary="Switch the balancer algorithm", role=Role.OPERATOR,
           body=AlgorithmChange, ok=(200, LoadBalancerOut))
def put_load_balancer(body: AlgorithmChange) -> LoadBalancerOut:
    """Switch at run time; an unknown name is 400 listing the valid ones."""
    rt = runtime()
    rt.router.set_algorithm(body.algorithm)
    return load_balancer_out(rt)


@api.route("GET", "/api/circuit-breakers", summary="Every service's breaker", role=Role.VIEWER,
           ok=(200, BreakersOut))
def list_breakers() -> BreakersOut:
    """Counts by state and each breaker."""
    items = [breaker_out(b) for b in breakers_of(runtime())]
    count = {s: sum(1 for i in items if i.state == s) for s in BreakerState}
    return BreakersOut(total=len(items), closed=count[BreakerState.CLOSED], open=count[BreakerState.OPEN],
                       halfOpen=count[BreakerState.HALF_OPEN], breakers=items)


@api.route("PUT", "/api/circuit-breakers/<service_name>", summary="Change a breaker's thresholds",
           role=Role.OPERATOR, body=BreakerChange, ok=(200, BreakerOut), errors=(503,))
def put_breaker(service_name: str, body: BreakerChange) -> BreakerOut:
    """Validated as a whole (e.g. minimumCalls may not exceed windowSize), stored, applied live."""
    rt = runtime()
    breaker = _breaker_of(rt, service_name)
    changes = {_BREAKER_FIELDS[k]: v for k, v in body.model_dump(exclude_unset=True).items()}
    try:
        config = replace(breaker.config, **changes)
    except ValueError as exc:
        raise ValidationFailed(_api_names(str(exc))) from None
    rt.breakers.configure(rt.sessions, service_name, config)
    return breaker_out(breaker)


@api.route("POST", "/api/circuit-breakers/<service_name>/reset", summary="Close one breaker",
           role=Role.OPERATOR, ok=(200, BreakerOut))
def reset_breaker(service_name: str) -> BreakerOut:
    """Back to CLOSED with empty counters."""
    breaker = _breaker_of(runtime(), service_name)
    breaker.reset()
    return breaker_out(breaker)


@api.route("POST", "/api/circuit-breakers/reset-all", summary="Close every breaker", role=Role.OPERATOR,
           ok=(200, MessageOut))
def reset_all_breakers() -> MessageOut:
    """Every breaker back to CLOSED."""
    breakers = breakers_of(runtime())
    for b in breakers:
        b.reset()
    return MessageOut(message=f"{len(breakers)} breaker(s) reset")
