"""Coordinated omission: a 1 s stall of the target must show in the corrected latencies, not in the uncorrected.

The generator sends 100 req/s for 10 s with 2 users (backlog 100) through the Router to
bench.stall_target, a ~1 ms target that is told to stall once, 3 s in, for 1000 ms. During the stall
both users wait on their in-flight requests, so the ~100 requests due meanwhile queue in the backlog
and go out only when it ends. Timed from their send (uncorrected, what a closed-loop tool reports)
they look fast and only the 2 stalled requests are slow: p99 stays ~1 ms. Timed from their due time
(corrected, as wrk2 does) about 5 % of the run waited 500 ms or more: p99 near 1 s. Pass when the
corrected p99 >= 500 ms and the uncorrected p99 < 500 ms.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import aiohttp

import bench.common  # noqa: F401 - puts the project on sys.path
from bench.loadgen_vs_locust import bench_router, wait_http
from engine.fleet.processes import free_port, spawn, stop_all
from engine.loadtest.generator import Generator, Plan, Sample, Tally
from engine.loadtest.hdr import Histogram
from engine.loadtest.sender import router_sender

ROOT = Path(__file__).resolve().parents[1]
RATE, SECONDS, USERS, BACKLOG = 100.0, 10.0, 2, 100
STALL_AT_S, STALL_MS = 3.0, 1000
LIMIT_MS = 500.0


def ms(h: Histogram, q: float) -> float:
    """Percentile q of h in milliseconds (0 when empty)."""
    v = h.percentiles([q])[q]
    return 0.0 if v is None else v / 1000.0


async def measure(url: str) -> Tally:
    """One run through the Router with one stall; per-second lines as it goes; the whole run's tally."""
    router = bench_router(url)
    await router.start()
    send = router_sender(router, "bench", "GET", "/")
    for _ in range(20):  # connections open before the clock starts
        await asyncio.gather(*(send(0) for _ in range(USERS)))
    total = Tally()

    def on_second(sample: Sample) -> None:
        t = sample.tally
        total.merge(t)
        print(f"  second {sample.second:2d}: {t.sent:3d} sent, {t.ok:3d} ok, {t.failed} failed, {t.dropped} dropped, "
              f"max corrected {t.corrected.max / 1000:7.1f} ms, uncorrected {t.uncorrected.max / 1000:7.1f} ms",
              flush=True)

    async def stall_once(t0: float) -> None:
        await asyncio.sleep(max(0.0, t0 + STALL_AT_S - time.monotonic()))
        async with aiohttp.ClientSession() as session, session.get(f"{url}/stall?ms={STALL_MS}") as r:
            await r.read()
        print(f"  stall of {STALL_MS} ms started at {time.monotonic() - t0:.2f} s", flush=True)

    gen = Generator(Plan(RATE, SECONDS, USERS, BACKLOG), send, time.monotonic, on_second)
    t0 = time.monotonic()
    staller = asyncio.ensure_future(stall_once(t0))
    try:
        await gen.run(t0)
    finally:
        await staller
        await router.close()
    return total


def main() -> int:
    port = free_port(18400, set())
    url = f"http://127.0.0.1:{port}"
    proc = spawn([sys.executable, "-m", "bench.stall_target", "--port", str(port)], cwd=ROOT)
    try:
        wait_http(url + "/", proc)
        t = asyncio.run(measure(url))
    finally:
        stop_all([proc])
    c, u = t.corrected, t.uncorrected
    print(f"{t.sent} sent, {t.ok} ok, {t.failed} failed, {t.dropped} dropped")
    for name, h in (("corrected", c), ("uncorrected", u)):
        print(f"  {name:11s} p50 {ms(h, 50.0):7.1f} ms, p99 {ms(h, 99.0):7.1f} ms, max {h.max / 1000:7.1f} ms")
    ok = ms(c, 99.0) >= LIMIT_MS > ms(u, 99.0)
    print(f"coordinated omission, {STALL_MS} ms stall at {RATE:g} req/s with {USERS} users: corrected p99 "
          f"{ms(c, 99.0):.1f} ms (limit >= {LIMIT_MS:g}), uncorrected p99 {ms(u, 99.0):.1f} ms (limit < {LIMIT_MS:g}): "
          f"{'ok' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
