"""A sample microservice for the demo fleet: /health, Prometheus /metrics, /work with real latency.

Run as `python -m engine.fleet.demo_service --name orders --port 7101 --seed 1`. The latency model is
log-normal around the requested median with a rare slow tail; it is seeded, so runs repeat.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import math
import random
import time

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["LatencyModel", "main", "make_app"]

MAX_MS = 10_000.0


class LatencyModel:
    """Log-normal latency (sigma 0.35) around a median, plus a 1% tail 3-8x slower."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)  # noqa: S311 - models load, not secrets

    def sample(self, median_ms: float) -> float:
        """One latency in milliseconds, capped at MAX_MS."""
        value = median_ms * math.exp(self._rng.gauss(0.0, 0.35))
        if self._rng.random() < 0.01:
            value *= self._rng.uniform(3.0, 8.0)
        return min(value, MAX_MS)


def make_app(name: str, seed: int) -> web.Application:
    """The service's routes, with its own Prometheus registry (process metrics included)."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    requests = Counter("demo_requests_total", "Requests served", ["path", "status"], registry=registry)
    latency = Histogram("demo_work_seconds", "Time spent in /work", registry=registry)
    model = LatencyModel(seed)
    started = time.monotonic()

    async def health(_: web.Request) -> web.Response:
        requests.labels("/health", "200").inc()
        return web.json_response({"status": "ok", "service": name, "uptimeSeconds": time.monotonic() - started})

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def work(request: web.Request) -> web.Response:
        try:
            median = float(request.query.get("ms", "50"))
            cpu_ms = float(request.query.get("cpu", "1"))
        except ValueError:
            requests.labels("/work", "400").inc()
            return web.json_response({"error": "ms and cpu must be numbers"}, status=400)
        if not (0 <= median <= MAX_MS and 0 <= cpu_ms <= 1000):
            requests.labels("/work", "400").inc()
            return web.json_response({"error": "ms must be 0..10000 and cpu 0..1000"}, status=400)
        begin = time.perf_counter()
        _burn(cpu_ms / 1000.0)
        delay = model.sample(median) / 1000.0 if median > 0 else 0.0
        await asyncio.sleep(max(0.0, delay - (time.perf_counter() - begin)))
        elapsed = time.perf_counter() - begin
        latency.observe(elapsed)
        requests.labels("/work", "200").inc()
        return web.json_response({"service": name, "ms": round(elapsed * 1000.0, 3)})

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/work", work)
    return app


def _burn(seconds: float) -> None:
    """Real CPU work, so the CPU figure the engine scrapes moves with load."""
    end = time.perf_counter() + seconds
    digest = b"x"
    while time.perf_counter() < end:
        digest = hashlib.sha256(digest).digest()


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    # instances of one service share --seed; the port tells their latency sequences apart
    app = make_app(args.name, args.seed * 100_000 + args.port)
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
