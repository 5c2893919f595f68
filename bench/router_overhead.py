"""Router cost per request vs a bare aiohttp call to the same real localhost target (median, interleaved).

Both sides use the same aiohttp pool settings and send GET /health to one demo instance process, one
request at a time, alternating request by request (order swapped every pair) so machine noise hits
both alike. The goal is <= 1.10x.
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
from engine.security.ssrf import Policy
from engine.traffic.breaker import BreakerConfig
from engine.traffic.breakers import BreakerBook
from engine.traffic.outlier import OutlierEjector
from engine.traffic.recorder import TrafficRecorder
from engine.traffic.resilience import ResilienceCounters, RetryBudget
from engine.traffic.router import Router

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
        bare_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1000, limit_per_host=200, ttl_dns_cache=300),
            trust_env=False, auto_decompress=False)
        url = target.url + "/health"
        timeout = aiohttp.ClientTimeout(total=5.0)
        bare: list[float] = []
        routed: list[float] = []

        async def bare_call() -> None:
            async with bare_session.request("GET", url, allow_redirects=False, timeout=timeout) as r:
                await r.read()

        async def routed_call() -> None:
            await router.send("bench", "GET", "/health")

        for warm in (bare_call, routed_call):
            for _ in range(200):
                await warm()
        pair = ((bare_call, bare), (routed_call, routed))
        for n in range(PAIRS):
            for fn, out in pair if n % 2 else pair[::-1]:
                t0 = time.perf_counter()
                await fn()
                out.append(time.perf_counter() - t0)
        await bare_session.close()
        await router.close()
    ok = report(f"router vs bare aiohttp call, GET /health on loopback ({len(bare)} requests each, median)",
                median_us(routed), median_us(bare), "bare", limit=1.10)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
