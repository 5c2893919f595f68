"""Phased health checks: phases spread over the interval, a slow instance delays no other, an interval that cannot
be kept is counted and logged; checks on the wire client keep one connection per instance, bound bodies and keep
the SSRF guard's and the failure texts. Plans take the time as an argument; the rest is real HTTP on loopback."""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest

from engine.clock import SystemClock
from engine.fleet.registry import InstanceSpec, Registry, ServiceSpec
from engine.health.checker import HealthChecker, HealthState, PhasePlan, phase_of
from engine.health.probe import FetchError, check_fetch
from engine.security.ssrf import Policy
from engine.traffic.wire import HttpClient

LOOPBACK = Policy.instances(("127.0.0.0/8",))


def fleet(n: int, port: int = 9000, service_id: int = 1) -> tuple[ServiceSpec, ...]:
    return (ServiceSpec(service_id, "orders", "/health", None, 1, False,
                        tuple(InstanceSpec(k, service_id, f"http://127.0.0.1:{port + k}") for k in range(1, n + 1))),)


def test_phases_spread_evenly_and_each_instance_is_due_once_per_interval():
    plan = PhasePlan(5.0, start=100.0)
    plan.set_fleet(fleet(1000), 100.0)
    first = plan.due(100.0)  # a fresh start: every instance once at once, with no due time, then at its phase
    assert len(first) == 1000 and {at for _, _, at in first} == {None}
    due: list[tuple[int, float]] = []
    t = 100.0
    while t < 115.0:  # three intervals in 10 ms steps
        t = round(t + 0.01, 2)
        due.extend((i.id, at) for _, i, at in plan.due(t) if at is not None)
    per_instance = Counter(iid for iid, _ in due)
    assert set(per_instance.values()) == {3} and len(per_instance) == 1000
    buckets = Counter(int((at - 100.0) % 5.0 * 2) for _, at in due)  # half-second slices of the interval
    assert len(buckets) == 10 and all(250 <= c <= 350 for c in buckets.values()), buckets  # 300 each if even
    for iid, at in due:
        assert (at - 100.0) % 5.0 == pytest.approx(phase_of(iid, 5.0), abs=1e-6)


def test_a_caller_late_by_more_than_an_interval_gets_no_burst_and_the_misses_are_counted():
    plan = PhasePlan(1.0, start=0.0)
    plan.set_fleet(fleet(100), 0.0)
    assert len(plan.due(0.0)) == 100  # the first checks at once
    assert len(plan.due(0.999)) == 100
    late = plan.due(4.5)  # a loop stalled 3.5 s: only the last interval's slots are still worth a check
    assert sorted(i.id for _, i, _ in late) == list(range(1, 101))  # each once, no burst of the missed ones
    assert all(at is not None and 4.5 - at < 1.0 for _, _, at in late)
    # due at 1 + phase and 2 + phase: missed; at 3 + phase: missed when phase <= 0.5 (more than a second ago)
    assert plan.missed == 200 + sum(phase_of(k, 1.0) <= 0.5 for k in range(1, 101))


def test_an_instance_added_later_is_due_at_once_and_a_removed_one_no_more():
    plan = PhasePlan(5.0, start=0.0)
    plan.set_fleet(fleet(2), 0.0)
    assert [at for _, _, at in plan.due(0.0)] == [None, None]
    assert {i.id for _, i, _ in plan.due(5.0)} == {1, 2}
    plan.set_fleet(fleet(3), 5.2)
    assert [i.id for _, i, _ in plan.due(5.2)] == [3]
    plan.set_fleet(fleet(3)[0:0], 6.0)
    assert plan.due(30.0) == [] and plan.next_due() is None


# -- real HTTP ----------------------------------------------------------------------------------


Handler = Callable[[int], Awaitable[tuple[int, bytes]]]


class Served:
    """Keep-alive HTTP/1.1 servers on free loopback ports: one per instance."""

    def __init__(self) -> None:
        self.servers: list[asyncio.Server] = []
        self.ports: list[int] = []
        self.connections: Counter[int] = Counter()  # requests per accepted connection

    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.ports]

    def close(self) -> None:
        for server in self.servers:
            server.close()


async def serve(handler: Handler, n: int = 1) -> Served:
    """n servers; handler(request number) -> (status, body)."""
    served = Served()
    connections = served.connections
    accepted = itertools.count(1)

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = next(accepted)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if not head:
                    break
                connections[conn] += 1
                status, body = await handler(sum(connections.values()))
                writer.write(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n" % (status, len(body)) + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    for _ in range(n):
        server = await asyncio.start_server(client, "127.0.0.1", 0)
        served.servers.append(server)
        served.ports.append(server.sockets[0].getsockname()[1])
    return served


async def ok(_n: int) -> tuple[int, bytes]:
    return 200, b"ok"


class Collect:
    def __init__(self) -> None:
        self.events: list[object] = []

    def submit(self, event: object) -> None:
        self.events.append(event)


def checker_over(urls: list[str], *, concurrency: int = 10, timeout: float = 2.0
                 ) -> tuple[HealthChecker, HttpClient]:
    registry = Registry()
    registry.replace((ServiceSpec(1, "orders", "/health", None, 1, False,
                                  tuple(InstanceSpec(k, 1, u) for k, u in enumerate(urls, start=1))),))
    probe = HttpClient(LOOPBACK)
    checker = HealthChecker(registry, check_fetch(probe), Collect(), SystemClock(), timeout=timeout,  # type: ignore[arg-type]
                            degraded_ms=1000.0, fall=1, rise=1, concurrency=concurrency)
    return checker, probe


async def run_for(checker: HealthChecker, interval: float, seconds: float) -> None:
    task = asyncio.create_task(checker.run(interval))
    await asyncio.sleep(seconds)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def test_a_slow_instance_delays_no_other_and_the_schedule_is_kept():
    async def scenario() -> None:
        fast = await serve(ok, 8)

        async def slow(_n: int) -> tuple[int, bytes]:
            await asyncio.sleep(0.3)
            return 200, b"ok"

        slow_one = await serve(slow)
        checker, probe = checker_over(fast.urls() + slow_one.urls())
        await run_for(checker, 0.5, 2.3)  # four intervals and a bit
        checker.settle()
        c = checker.counts
        assert c.late == 0 and c.skipped == 0 and c.overrun_intervals == 0, c
        assert 9 * 5 <= c.started <= 9 * 6  # the first checks at once, then four or five intervals
        assert all(checker.state_of(k) is HealthState.HEALTHY for k in range(1, 10))
        assert sum(fast.connections.values()) >= 8 * 4 and len(fast.connections) == 8  # one kept each
        assert len(slow_one.connections) == 1
        await probe.close()
        fast.close()
        slow_one.close()

    asyncio.run(scenario())


def test_an_instance_slower_than_its_interval_is_skipped_not_stacked_and_the_overrun_is_counted(caplog):
    async def scenario() -> None:
        async def hang(_n: int) -> tuple[int, bytes]:
            await asyncio.sleep(0.8)
            return 200, b"late"

        hanging = await serve(hang)
        fast = await serve(ok)
        checker, probe = checker_over(hanging.urls() + fast.urls(), timeout=0.6)
        await run_for(checker, 0.4, 1.9)
        with caplog.at_level(logging.WARNING, logger="mm.health"):
            checker.settle()
            checker.settle()  # nothing new, and the log line is rate-limited anyway
        c = checker.counts
        assert c.skipped >= 1 and c.overrun_intervals == 1, c
        assert checker.state_of(1) is HealthState.UNHEALTHY and checker.state_of(2) is HealthState.HEALTHY
        lines = [r.getMessage() for r in caplog.records if "cannot keep" in r.getMessage()]
        assert len(lines) == 1 and "0.4 s interval" in lines[0]
        await probe.close()
        hanging.close()
        fast.close()

    asyncio.run(scenario())


def test_too_few_slots_for_the_interval_make_checks_late_or_skipped_and_the_interval_is_reported():
    async def scenario() -> None:
        async def slowish(_n: int) -> tuple[int, bytes]:
            await asyncio.sleep(0.25)
            return 200, b"ok"

        served = await serve(slowish, 6)
        # one slot, 6 instances of 250 ms each: at most 4 checks a second where 6 are due
        checker, probe = checker_over(served.urls(), concurrency=1)
        await run_for(checker, 1.0, 3.2)
        checker.settle()
        c = checker.counts
        assert c.late + c.skipped >= 3 and c.overrun_intervals == 1, c
        assert c.started <= 14  # never more than the one slot allows
        await probe.close()
        served.close()

    asyncio.run(scenario())


def test_checks_keep_alive_bound_bodies_and_say_why_they_failed():
    async def scenario() -> None:
        big = b"x" * (200 * 1024)

        async def answer(n: int) -> tuple[int, bytes]:
            return (503, big) if n == 3 else (204, b"")

        served = await serve(answer)
        probe = HttpClient(LOOPBACK)
        get = check_fetch(probe, body_limit=64 * 1024)
        url = served.urls()[0] + "/health"
        assert [await get(url, 1.0) for _ in range(2)] == [204, 204]
        assert len(served.connections) == 1
        assert await get(url, 1.0) == 503  # 64 KiB of 200 read: the connection is not reused after it
        assert await get(url, 1.0) == 204 and len(served.connections) == 2
        served.close()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            unused = s.getsockname()[1]
        with pytest.raises(FetchError, match=r"^ConnectError"):
            await get(f"http://127.0.0.1:{unused}/health", 1.0)
        with pytest.raises(FetchError, match=r"^refused: 10\.0\.0\.1 is not in INSTANCE_ALLOWLIST"):
            await get("http://10.0.0.1:80/health", 1.0)
        with pytest.raises(FetchError, match="link-local"):
            await check_fetch(HttpClient(Policy.instances(("*",))))("http://169.254.169.254/latest", 1.0)
        with pytest.raises(FetchError, match=r"^unsupported URL"):
            await get("ftp://127.0.0.1/health", 1.0)

        async def never(_n: int) -> tuple[int, bytes]:
            await asyncio.sleep(10)
            return 200, b""

        hanging = await serve(never)
        with pytest.raises(TimeoutError):
            await get(hanging.urls()[0] + "/health", 0.2)
        await probe.close()
        hanging.close()

    asyncio.run(scenario())
