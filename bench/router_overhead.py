"""Router cost per request vs a bare call on the same HTTP client to the same real localhost target (median,
interleaved); and that client vs a bare aiohttp call, for scale.

All sides send GET /health to one demo instance process, one request at a time, taking turns request by
request (the order rotates every round) so machine noise hits them alike. The router sends over
engine.traffic.wire's HttpClient; the bare call uses another HttpClient with the router's settings, so the
ratio is the router's own bookkeeping (balancer, breaker, retries budget, recording). The goal is <= 1.10x.
The aiohttp line (same pool limits) says what the client itself costs next to aiohttp's.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time

import aiohttp

from bench.common import demo_target, median_us, report
from engine.clock import SystemClock
from engine.fleet.registry import InstanceSpec, Registry, ServiceSpec
from engine.health.checker import HealthState
from engine.hosting import new_event_loop
from engine.security.ssrf import Policy
from engine.traffic.breaker import BreakerConfig
from engine.traffic.breakers import BreakerBook
from engine.traffic.outlier import OutlierEjector
from engine.traffic.recorder import TrafficRecorder
from engine.traffic.resilience import ResilienceCounters, RetryBudget
from engine.traffic.router import Router
from engine.traffic.wire import HttpClient, prepare

PAIRS = 10_000


class NullWriter:
    def submit(self, event: object) -> None:
        pass


async def main() -> int:
    with demo_target() as target:
        clock = SystemClock()
        registry = Registry()
        registry.replace((ServiceSpec(1, "bench", "/health", None, 1, False,
                                          (InstanceSpec(1, 1, target.url),)),))
        router = Router(registry, lambda _i: HealthState.HEALTHY, BreakerBook(clock, NullWriter(), BreakerConfig()),  # type: ignore[arg-type]
                        OutlierEjector(clock), TrafficRecorder(), ResilienceCounters(clock), RetryBudget(), clock,
                        rng=random.Random(1), policy=Policy.instances(("127.0.0.0/8",)))
        await router.start()
        client = HttpClient(router.policy, per_host=200, connect_timeout=5.0, timeout=5.0)
        bare_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1000, limit_per_host=200, ttl_dns_cache=300),
            trust_env=False, auto_decompress=False)
        url = target.url + "/health"
        timeout = aiohttp.ClientTimeout(total=5.0)
        bare: list[float] = []
        routed: list[float] = []
        wire: list[float] = []
        prepared = prepare("GET", url)

        async def bare_call() -> None:
            async with bare_session.request("GET", url, allow_redirects=False, timeout=timeout) as r:
                await r.read()

        async def wire_call() -> None:
            await client.request("GET", prepared)

        async def routed_call() -> None:
            await router.send("bench", "GET", "/health")

        for warm in (bare_call, wire_call, routed_call):
            for _ in range(200):
                await warm()
        sides = [(bare_call, bare), (wire_call, wire), (routed_call, routed)]
        for n in range(PAIRS):
            turn = n % len(sides)
            for fn, out in sides[turn:] + sides[:turn]:
                t0 = time.perf_counter()
                await fn()
                out.append(time.perf_counter() - t0)
        await bare_session.close()
        await client.close()
        await router.close()
    ok = report(f"router vs a bare call on its HTTP client, GET /health on loopback ({len(wire)} requests each, "
                "median)", median_us(routed), median_us(wire), "bare", limit=1.10)
    report("its HTTP client (engine.traffic.wire) vs a bare aiohttp call, same requests", median_us(wire),
           median_us(bare), "aiohttp")
    return 0 if ok else 1


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=new_event_loop) as runner:  # the engine loop's kind (uvloop when installed)
        sys.exit(runner.run(main()))
