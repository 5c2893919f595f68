"""The one traffic path: balancer pick -> breaker -> send (fault hook) -> retries under a budget -> record.

Used by the proxy and the load generator. Nothing here waits on the database: outcomes go to
in-memory counters, the metrics bucket (TrafficRecorder) and, for transitions, the batch writer.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Callable, Iterable
from typing import NamedTuple, Protocol
from urllib.parse import quote

from yarl import URL

from contract.errors import ApiError, NotFound, Unavailable
from contract.states import HealthState
from engine.chaos.faults import InjectedStatus
from engine.clock import Clock
from engine.fleet.registry import Registry, ServiceSpec
from engine.security.ssrf import AddressRefused, Policy
from engine.store.logs import event_logger
from engine.traffic.balancer import Algorithm, Balancer, Target, make_balancer
from engine.traffic.breaker import CircuitBreaker
from engine.traffic.breakers import BreakerBook
from engine.traffic.outlier import OutlierEjector
from engine.traffic.recorder import TrafficRecorder
from engine.traffic.resilience import ResilienceCounters, RetryBudget, backoff_s
from engine.traffic.wire import Exchange, Header, HttpClient, Prepared, ResponseTooLarge, Url, prepare

__all__ = [
    "CircuitOpen", "FaultHook", "Flight", "NoInstance", "Request", "Router", "Upstream", "UpstreamRefused",
    "UpstreamTimeout", "UpstreamTooLarge",
]

log = event_logger("router")
RETRYABLE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_INJECTED_HEADERS = ((b"Content-Type", b"application/json"), (b"X-Fault-Injected", b"true"))


class CircuitOpen(Unavailable):
    """503: the service's breaker refuses calls (a fallback)."""


class NoInstance(Unavailable):
    """503: no healthy, non-ejected instance (a fallback)."""


class UpstreamTimeout(ApiError):
    """504: the instance did not answer within the timeout."""

    status = 504


class UpstreamRefused(ApiError):
    """502: the instance's address is one the SSRF guard refuses (checked at the connection)."""

    status = 502


class UpstreamTooLarge(ApiError):
    """502: the instance's answer has a body past the proxy's limit (the rest was not read)."""

    status = 502


class FaultHook(Protocol):
    """Where failure simulation acts on outbound traffic (it may sleep, or raise to fail the call)."""

    @property
    def armed(self) -> bool:
        """Whether any fault may fire (when not, the router does not call before_send)."""
        ...

    async def before_send(self, service: str, url: str) -> None:
        """Called before every attempt."""
        ...


# what may stand in a request line as is: printable ASCII but the space
_QUERY_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))


@functools.lru_cache(maxsize=4096)
def _prepared(method: str, base: str, path: str, query: str) -> Prepared:
    """A request ready to send, cached: parsing costs about as much as the rest of the router's bookkeeping.

    The path is quoted (and its dot segments resolved); the query goes out as given, only spaces, control
    characters and non-ASCII are percent-encoded (as UTF-8; surrogate escapes as their bytes).
    """
    url = URL(base + "/" + path.lstrip("/"))
    target = url.raw_path_qs or "/"
    if query:
        target += "?" + quote(query, safe=_QUERY_SAFE, errors="surrogateescape")
    if url.raw_host is None or url.port is None or url.scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL with a host: {base!r}")
    return prepare(method, Url(url.scheme, url.raw_host, url.port, target))


class Upstream(NamedTuple):
    """What the instance answered (after retries); raw_headers as received (bytes pairs)."""

    status: int
    raw_headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    instance_url: str
    attempts: int
    latency_ms: float


class Request(NamedTuple):
    """One request to route: method, path under the instance's base URL, raw query, headers, body, hash key."""

    method: str
    path: str
    query: str = ""
    headers: tuple[Header, ...] = ()
    body: bytes = b""
    key: str | None = None

    @property
    def retryable(self) -> bool:
        """Idempotent methods may be sent again."""
        return self.method.upper() in RETRYABLE_METHODS


class Flight:
    """A request routed by Router.begin(): its first attempt, written on a pooled connection (exchange) or not yet
    sent (exchange None); Router.land() or Router.resume() finishes it."""

    __slots__ = ("breaker", "exchange", "request", "result", "spec", "start", "target")

    def __init__(self, spec: ServiceSpec, request: Request, target: Target, breaker: CircuitBreaker) -> None:
        self.spec = spec
        self.request = request
        self.target = target
        self.breaker = breaker
        self.start: float | None = None  # when the attempt began (its bookkeeping done)
        self.exchange: Exchange | None = None
        self.result: _Attempt | None = None  # the first attempt's outcome, when it failed


# an attempt's answer, its failure (None = success: any status < 500) and what a failure without an answer raises
# when no retry follows; a plain tuple, as is Upstream's making below (tuple.__new__, not its Python __new__): the
# router makes one of each per request
_Attempt = tuple[Upstream | None, str | None, type[ApiError] | None]
_new = tuple.__new__


class Router:
    """Routes requests to registered services' instances."""

    def __init__(
        self,
        registry: Registry,
        health_of: Callable[[int], HealthState],
        breakers: BreakerBook,
        ejector: OutlierEjector,
        traffic: TrafficRecorder,
        counters: ResilienceCounters,
        budget: RetryBudget,
        clock: Clock,
        *,
        algorithm: str = "round-robin",
        timeout_s: float = 5.0,
        max_retries: int = 2,
        backoff_base_s: float = 0.025,
        backoff_cap_s: float = 0.25,
        policy: Policy,
        max_body_bytes: int = 10 * 1024 * 1024,
        rng: random.Random | None = None,
        faults: FaultHook | None = None,
        health_generation: Callable[[], int] | None = None,
    ) -> None:
        self._registry = registry
        self._health_of = health_of
        self.breakers = breakers
        self.ejector = ejector
        self._traffic = traffic
        self.counters = counters
        self.budget = budget
        self._clock = clock
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.policy = policy
        self.max_body_bytes = max_body_bytes
        self._backoff = (backoff_base_s, backoff_cap_s)
        self._rng = rng or random.Random()  # noqa: S311 - spreads load and jitters retries
        self.faults: FaultHook | None = faults  # None or not armed: no await on the hot path
        self._now = clock.monotonic
        make_balancer(algorithm)  # an unknown name fails here, not on the first request
        self.algorithm = Algorithm(algorithm)
        self._balancers: dict[str, Balancer] = {}
        self.targets: dict[int, Target] = {}
        self._client: HttpClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deferred: list[tuple[str, int, CircuitBreaker, float]] = []  # successes recorded on the next turn
        # health_generation: a number that changes with any instance's health (None: candidates asked every time);
        # a service's candidates are kept with the spec and the number they were found with (see candidates())
        self._health_generation = health_generation
        self._serving: dict[str, tuple[ServiceSpec, int, list[Target]]] = {}

    async def start(self) -> None:
        """Open the connection pools (inside the engine loop): they dial only addresses the policy allows, each
        resolved and checked at the dial (an IP literal checked itself)."""
        self._loop = asyncio.get_running_loop()
        self._client = HttpClient(self.policy, per_host=200, connect_timeout=self.timeout_s, timeout=self.timeout_s,
                                  max_body=self.max_body_bytes)

    async def close(self) -> None:
        """Close the connection pools."""
        if self._client is not None:
            await self._client.close()
            self._client = None

    def set_algorithm(self, name: str) -> None:
        """Switch every service to a fresh balancer of this algorithm (UnknownAlgorithm lists the valid ones)."""
        make_balancer(name)
        self.algorithm = Algorithm(name)
        self._balancers = {}
        self._serving = {}
        for target in self.targets.values():
            target.current_weight = 0
        log.info("load balancer algorithm is now %s", name, extra={"meta": {"algorithm": name}})

    def candidates(self, spec: ServiceSpec) -> list[Target]:
        """Instances that may take a request: healthy or degraded, and not ejected (the list is the router's: not to
        be changed). Kept per service while nothing it rests on changes: the same spec (the registry makes a new one
        on any change to a service, its instances or weights), the same health generation, and no ejection held (an
        ejection ends with time, unannounced: while any is held, they are asked every time)."""
        generation = self._health_generation
        if generation is None or self.ejector.held:
            return self._find_candidates(spec)
        number = generation()  # read before the health is: a change meanwhile makes what is kept stale, not wrong
        kept = self._serving.get(spec.name)
        if kept is not None and kept[0] is spec and kept[1] == number:
            return kept[2]
        out = self._find_candidates(spec)
        self._serving[spec.name] = (spec, number, out)
        return out

    def _find_candidates(self, spec: ServiceSpec) -> list[Target]:
        out = []
        targets, health_of = self.targets, self._health_of
        is_ejected = self.ejector.is_ejected if self.ejector.any_ejected else None  # none: no call per instance
        healthy, degraded = HealthState.HEALTHY, HealthState.DEGRADED
        for inst in spec.instances:
            target = targets.get(inst.id)
            if target is None or target.url != inst.url:
                target = targets[inst.id] = Target(inst.id, inst.url, inst.weight)
            target.weight = inst.weight
            health = health_of(inst.id)
            # identity checks, not a set lookup: an Enum's __hash__ is Python code, and this runs per request
            if (health is healthy or health is degraded) and (is_ejected is None or not is_ejected(inst.id)):
                out.append(target)
        return out

    async def send(
        self,
        service: str,
        method: str,
        path: str,
        *,
        query: str = "",
        headers: Iterable[Header] = (),
        body: bytes = b"",
        key: str | None = None,
    ) -> Upstream:
        """Route one request; raises NotFound, CircuitOpen, NoInstance or UpstreamTimeout, else the answer."""
        flight = self.begin(service, method, path, query=query, headers=headers, body=body, key=key)
        upstream = self.land(flight)
        return upstream if upstream is not None else await self.resume(flight)

    def begin(
        self,
        service: str,
        method: str,
        path: str,
        *,
        query: str = "",
        headers: Iterable[Header] = (),
        body: bytes = b"",
        key: str | None = None,
    ) -> Flight:
        """send()'s steps up to its first wait, with no coroutine: the instance chosen and, when a pooled connection
        is idle and no fault is armed, the request written. Raises what send() raises before any wait. Then land()
        once the exchange's future is done (None: resume() finishes it), else resume()."""
        spec = self._registry.by_name(service)
        if spec is None:
            raise NotFound("service", service)
        client = self._client
        if client is None:
            raise Unavailable("the engine's traffic loop is not running")
        request: Request = _new(Request, (method.upper(), path, query, tuple(headers), body, key))
        self.counters.add("requests")
        self.budget.request_started()
        try:
            target, breaker = self._choose(spec, request, None)
            flight = Flight(spec, request, target, breaker)
            faults = self.faults
            if faults is None or not faults.armed:
                url = _prepared(request.method, target.url, request.path, request.query)
                exchange = client.start(url, request.headers, request.body, self.timeout_s, self.max_body_bytes)
                if exchange is not None:
                    self._begin_attempt(spec, target)
                    flight.start = self._now()
                    flight.exchange = exchange
        except BaseException:
            self.budget.request_ended()
            raise
        return flight

    def land(self, flight: Flight) -> Upstream | None:
        """The flight's answer when its exchange holds a successful one (all its bookkeeping done); else None."""
        exchange = flight.exchange
        if exchange is None or not exchange.waiter.done():
            return None
        response = HttpClient.done(exchange)
        if response is None:
            return None
        flight.exchange = None
        target = flight.target
        target.in_flight -= 1
        start = flight.start
        assert start is not None
        end = self._now()
        status, raw_headers, data = response
        upstream: Upstream = _new(Upstream, (status, raw_headers, data, target.url, 1, (end - start) * 1e3))
        result = self._conclude(flight.spec, target, flight.breaker, start, end, upstream,
                                f"HTTP {status}" if status >= 500 else None, None)
        if result[1] is None:
            self.budget.request_ended()
            return upstream
        flight.result = result
        return None

    async def resume(self, flight: Flight) -> Upstream:
        """The rest of a flight begin() started and land() did not finish: its attempt's answer, then retries."""
        try:
            result = flight.result
            if result is None:
                result = await self._attempt(flight.spec, flight.target, flight.breaker, flight.request, 1, flight)
                if result[1] is None and result[0] is not None:
                    return result[0]  # the common case: no retry machinery
            return await self._retry(flight.spec, flight.request, {flight.target.id}, result)
        finally:
            self.budget.request_ended()

    async def _retry(self, spec: ServiceSpec, request: Request, tried: set[int], result: _Attempt) -> Upstream:
        attempt = 0
        while True:
            if not request.retryable or attempt >= self.max_retries:
                return self._give_up(result)
            if not self.budget.try_retry():
                self.counters.add("budget_refusals")
                return self._give_up(result)
            try:
                self.counters.add("retries")
                await asyncio.sleep(backoff_s(attempt, *self._backoff, self._rng))
                attempt += 1
                target, breaker = self._choose(spec, request, tried)
                result = await self._attempt(spec, target, breaker, request, attempt + 1)
            finally:
                self.budget.retry_ended()
            if result[1] is None and result[0] is not None:
                self.counters.add("retry_successes")
                return result[0]

    def _give_up(self, result: _Attempt) -> Upstream:
        upstream, failure, error = result
        if upstream is not None:
            return upstream  # a 5xx answer goes back as is
        if error is UpstreamTimeout:
            self.counters.add("timeouts")
            raise UpstreamTimeout(f"no answer within {self.timeout_s:g} s")
        raise (error or Unavailable)(f"upstream failed: {failure}")

    def _balancer(self, service: str) -> Balancer:
        balancer = self._balancers.get(service)
        if balancer is None:
            balancer = self._balancers[service] = make_balancer(self.algorithm, self._rng)
        return balancer

    def _record_success(self, service: str, instance_id: int, breaker: CircuitBreaker, latency_ms: float) -> None:
        self._traffic.record(service, latency_ms, True)
        breaker.record_success(latency_ms)
        self.ejector.observe(service, instance_id, False, 0)

    def _record_deferred(self) -> None:
        """_record_success's work for a loop turn's quiet successes: each service's told once, in order."""
        deferred, self._deferred = self._deferred, []
        if len(deferred) == 1:
            self._record_success(*deferred[0])
            return
        batches: dict[str, tuple[CircuitBreaker, list[float]]] = {}
        instances: dict[int, str] = {}
        for service, instance_id, breaker, latency_ms in deferred:
            batch = batches.get(service)
            if batch is None or batch[0] is not breaker:
                if batch is not None:  # the service's breaker was replaced within the turn: the first batch first
                    self._record_batch(service, *batch)
                batch = batches[service] = (breaker, [])
            batch[1].append(latency_ms)
            instances[instance_id] = service
        for service, batch in batches.items():
            self._record_batch(service, *batch)
        observe = self.ejector.observe
        for instance_id, service in instances.items():
            observe(service, instance_id, False, 0)

    def _record_batch(self, service: str, breaker: CircuitBreaker, latencies_ms: list[float]) -> None:
        self._traffic.record_successes(service, latencies_ms)
        breaker.record_successes(latencies_ms)

    def _choose(self, spec: ServiceSpec, request: Request, tried: set[int] | None) -> tuple[Target, CircuitBreaker]:
        """Candidates -> breaker admission -> balancer pick (plain function: no coroutine on the hot path); a retry
        passes the instances tried (the pick is added) and goes elsewhere when it can."""
        serving = self.candidates(spec)
        if not serving:
            self.counters.add("fallbacks")
            raise NoInstance(f"no healthy instance of {spec.name}")
        breaker = self.breakers.get(spec.name)
        if not breaker.allow():
            self.counters.add("fallbacks")
            raise CircuitOpen(f"circuit breaker of {spec.name} is {breaker.state.value}")
        fresh = ([t for t in serving if t.id not in tried] or serving) if tried else serving  # retries go elsewhere
        target = self._balancer(spec.name).pick(fresh, request.key)
        if tried is not None:
            tried.add(target.id)
        return target, breaker

    def _begin_attempt(self, spec: ServiceSpec, target: Target) -> None:
        target.in_flight += 1
        target.picks += 1
        self._traffic.begin(spec.name)

    async def _attempt(
        self, spec: ServiceSpec, target: Target, breaker: CircuitBreaker, request: Request, attempt: int,
        flight: Flight | None = None,
    ) -> _Attempt:
        """One attempt on target (a flight's first: its bookkeeping and maybe its request already done)."""
        start = flight.start if flight is not None else None
        if start is None:
            url = _prepared(request.method, target.url, request.path, request.query)
            self._begin_attempt(spec, target)
            start = self._now()
        end = start
        upstream: Upstream | None = None
        failure: str | None = None
        error: type[ApiError] | None = None
        try:
            client = self._client
            exchange = flight.exchange if flight is not None else None
            if exchange is not None:
                assert client is not None
                status, raw_headers, data = await client.finish(exchange)
            else:
                if self.faults is not None and self.faults.armed:
                    await self.faults.before_send(spec.name, target.url)
                if client is None:
                    raise Unavailable("the engine's traffic loop is not running")
                status, raw_headers, data = await client.request(request.method, url, request.headers, request.body,
                                                                 self.timeout_s, self.max_body_bytes)
            end = self._now()
            upstream = _new(Upstream, (status, raw_headers, data, target.url, attempt, (end - start) * 1e3))
            if status >= 500:
                failure = f"HTTP {status}"
        except InjectedStatus as injected:
            end = self._now()
            body = b'{"error": "%s"}' % str(injected).encode()
            upstream = Upstream(injected.status, _INJECTED_HEADERS, body, target.url, attempt, (end - start) * 1e3)
            if injected.status >= 500:
                failure = f"HTTP {injected.status} (injected)"
        except (TimeoutError, ResponseTooLarge, OSError, ValueError, ApiError) as exc:
            failure, error = self._failure(exc)
        finally:
            target.in_flight -= 1
        if upstream is None:
            end = self._now()
        return self._conclude(spec, target, breaker, start, end, upstream, failure, error)

    def _conclude(self, spec: ServiceSpec, target: Target, breaker: CircuitBreaker, start: float, end: float,
                  upstream: Upstream | None, failure: str | None, error: type[ApiError] | None) -> _Attempt:
        """An attempt's outcome recorded (a quiet success on the next loop turn)."""
        latency = (end - start) * 1000.0
        if failure is None and self._loop is not None and breaker.quietly_closed(latency):
            # a fast success on a CLOSED breaker changes no decision, so its bookkeeping runs right after
            # the answer is handed back (next loop turn) instead of before it: the caller does not wait
            deferred = self._deferred
            deferred.append((spec.name, target.id, breaker, latency))
            if len(deferred) == 1:  # one callback records every success of this loop turn
                self._loop.call_soon(self._record_deferred)
            return upstream, None, None
        if failure is None:
            self._record_success(spec.name, target.id, breaker, latency)
            return upstream, None, None
        self._traffic.record(spec.name, latency, False)
        breaker.record_failure(failure)
        ejection = self.ejector.observe(spec.name, target.id, True, len(spec.instances))
        if ejection is not None:
            log.warning("instance %s of %s ejected for %.0f s after %d consecutive errors (last: %s)",
                        target.url, spec.name, ejection.until - self._clock.monotonic(), self.ejector.consecutive,
                        failure, extra={"meta": {"service": spec.name, "instance": target.url,
                                                 "times": ejection.times}})
        return upstream, failure, error

    def _failure(self, exc: BaseException) -> tuple[str, type[ApiError] | None]:
        """What failed in an attempt without an answer, and what it raises when no retry follows (None: 503)."""
        if isinstance(exc, TimeoutError):
            return f"timeout after {self.timeout_s:g} s", UpstreamTimeout
        if isinstance(exc, ResponseTooLarge):
            return f"response body larger than {self.max_body_bytes} bytes", UpstreamTooLarge
        if isinstance(exc, AddressRefused):
            return str(exc.strerror), UpstreamRefused
        return f"{type(exc).__name__}: {exc}"[:200], None
