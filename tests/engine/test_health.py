"""Health checks: classification, fall/rise damping, aggregation, and a round over scripted answers with a fake
clock."""

from __future__ import annotations

import asyncio

import pytest

from contract.events import InstanceHealthEvent, LogEvent, ServiceHealthEvent
from engine.clock import FakeClock
from engine.fleet.registry import InstanceSpec, Registry, ServiceSpec
from engine.health.checker import HealthChecker, HealthState, InstanceTracker, aggregate, classify
from engine.health.probe import FetchError
from tests.engine.fetch_double import fetch_by_port

H, D, U, K = HealthState.HEALTHY, HealthState.DEGRADED, HealthState.UNHEALTHY, HealthState.UNKNOWN


@pytest.mark.parametrize(
    ("status", "latency", "error", "expected"),
    [
        (200, 10.0, None, H),
        (204, 999.0, None, H),
        (200, 1001.0, None, D),
        (503, 5.0, None, D),
        (301, 5.0, None, D),
        (None, None, "ConnectError", U),
        (None, None, "timeout", U),
    ],
    ids=["ok", "just-under-threshold", "slow", "5xx", "3xx", "refused", "timeout"],
)
def test_classify(status, latency, error, expected):
    assert classify(status, latency, error, degraded_ms=1000).state is expected


@pytest.mark.parametrize(
    ("results", "states"),
    [
        ([H], [H]),
        ([H, U], [H, H]),  # one blip does not flap
        ([H, U, U], [H, H, U]),  # fall=2 consecutive failures
        ([H, U, H, U, H], [H, H, H, H, H]),  # alternating never reaches 2 in a row
        ([H, U, U, H], [H, H, U, U]),  # rise=2: one success is not enough
        ([H, U, U, H, H], [H, H, U, U, H]),
        ([H, U, D], [H, H, D]),  # two worse results move to the mildest of them
        ([U, H, D], [U, U, D]),  # two better results move to the worst of them
        ([H, D, U, H, D, D], [H, H, D, D, D, D]),
    ],
    ids=["first-taken", "blip", "fall", "alternating", "rise-not-yet", "rise", "mixed-worse", "mixed-better", "mixed"],
)
def test_tracker_damping(results, states):
    tracker = InstanceTracker(fall=2, rise=2)
    seen = []
    for r in results:
        tracker.observe(r)
        seen.append(tracker.state)
    assert seen == states


def test_tracker_reports_only_changes():
    tracker = InstanceTracker(fall=1, rise=3)
    assert tracker.observe(H) is H
    assert tracker.observe(H) is None
    assert tracker.observe(U) is U
    assert [tracker.observe(H) for _ in range(3)] == [None, None, H]


@pytest.mark.parametrize(
    ("states", "expected"),
    [([], K), ([K, K], K), ([H, H], H), ([H, K], H), ([H, U], D), ([D, D], D), ([U, U], U), ([U, K], U)],
    ids=["none", "all-unknown", "all-healthy", "healthy-unknown", "one-down", "degraded", "all-down", "down-unknown"],
)
def test_aggregate(states, expected):
    assert aggregate(states) is expected


class Collect:
    """A writer stand-in that keeps submitted events."""

    def __init__(self):
        self.events = []

    def submit(self, event):
        self.events.append(event)


def make_checker(handler, clock, fall=2, rise=2, ports=(9001, 9002)):
    service = ServiceSpec(
        id=1, name="orders", health_path="/health", metrics_path=None, weight=1, managed=False,
        instances=tuple(InstanceSpec(n, 1, f"http://127.0.0.1:{p}") for n, p in enumerate(ports, start=1)),
    )
    registry = Registry()
    registry.replace((service,))
    writer = Collect()
    checker = HealthChecker(
        registry, fetch_by_port(handler), writer, clock,  # type: ignore[arg-type]
        timeout=1.0, degraded_ms=500.0, fall=fall, rise=rise, concurrency=10,
    )
    return checker, writer


def test_round_marks_dead_instance_after_fall_threshold(caplog):
    clock = FakeClock()
    down = {"9002": False}

    def handler(port: int) -> int:
        if port == 9002 and down["9002"]:
            raise FetchError("ConnectError: connection refused")
        clock.advance(0.020)  # the instance takes 20 ms to answer
        return 200

    checker, writer = make_checker(handler, clock)
    asyncio.run(checker.run_once())
    assert checker.state_of(1) is H and checker.state_of(2) is H
    down["9002"] = True
    asyncio.run(checker.run_once())
    assert checker.state_of(2) is H  # one failure is a blip
    with caplog.at_level("INFO", logger="mm.health"):
        asyncio.run(checker.run_once())
    assert checker.state_of(2) is U and checker.state_of(1) is H
    assert any("127.0.0.1:9002 of orders is unhealthy (was healthy)" in r.getMessage() for r in caplog.records)
    latest = {e.instance_id: e for e in writer.events if isinstance(e, InstanceHealthEvent)}
    assert latest[2].status == "unhealthy" and "ConnectError" in (latest[2].error or "")
    assert latest[1].latency_ms == pytest.approx(20.0, abs=0.5)
    services = [e for e in writer.events if isinstance(e, ServiceHealthEvent)]
    assert services[-1].status == "degraded"
    assert not any(isinstance(e, LogEvent) for e in writer.events)  # logs go through the logging handler


def test_slow_instance_is_degraded_not_unhealthy():
    # one instance: the fake clock is global, so concurrent checks would share its advances
    clock = FakeClock()
    delay = {"s": 0.01}

    def handler(_port: int) -> int:
        clock.advance(delay["s"])
        return 200

    checker, writer = make_checker(handler, clock, fall=1, ports=(9001,))
    asyncio.run(checker.run_once())
    assert checker.state_of(1) is H
    delay["s"] = 0.8
    asyncio.run(checker.run_once())
    assert checker.state_of(1) is D
    assert [e for e in writer.events if isinstance(e, InstanceHealthEvent)][-1].error == "slow: 800 ms"


def test_hanging_instance_times_out_without_delaying_the_other():
    """A real asyncio wait: the hanging check is cut at the timeout, the other answers while it hangs."""
    clock = FakeClock()
    seen: list[str] = []

    async def handler(port: int) -> int:
        if port == 9001:
            seen.append("9001 sent")
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                seen.append("9001 cut")
                raise
        seen.append(f"{port} answered")
        return 200

    checker, writer = make_checker(handler, clock, fall=1)
    checker._timeout = 0.2
    asyncio.run(checker.run_once())
    assert seen == ["9001 sent", "9002 answered", "9001 cut"]  # concurrent: 9002 did not wait for 9001's timeout
    assert checker.state_of(1) is U and checker.state_of(2) is H
    latest = {e.instance_id: e for e in writer.events if isinstance(e, InstanceHealthEvent)}
    assert latest[1].error == "timeout after 0.2 s"


class ScaledUpDuringSettle(Registry):
    """A registry that gains an instance (registered, then marked healthy by its starter on an API thread) right
    after the settling job has read its snapshot: the interleaving of a scale-up with the interval's settle."""

    def __init__(self, before: ServiceSpec, after: ServiceSpec) -> None:
        super().__init__()
        self.replace((before,))
        self._after = after
        self.checker: HealthChecker | None = None

    def services(self) -> tuple[ServiceSpec, ...]:
        snapshot = super().services()
        if self.checker is not None and snapshot[0] is not self._after:
            checker, self.checker = self.checker, None
            self.replace((self._after,))
            checker.mark_healthy(self._after.instances[-1].id)
        return snapshot


def test_an_instance_started_while_the_interval_settles_stays_healthy():
    before = ServiceSpec(1, "orders", "/health", None, 1, False, (InstanceSpec(1, 1, "http://127.0.0.1:9001"),))
    after = ServiceSpec(1, "orders", "/health", None, 1, False,
                        (*before.instances, InstanceSpec(2, 1, "http://127.0.0.1:9002")))
    registry = ScaledUpDuringSettle(before, after)
    checker = HealthChecker(
        registry, fetch_by_port(lambda port: 200), Collect(), FakeClock(),  # type: ignore[arg-type]
        timeout=1.0, degraded_ms=500.0, fall=2, rise=2, concurrency=10,
    )
    registry.checker = checker
    checker.settle()  # reads the fleet without instance 2; instance 2 is registered and marked meanwhile
    assert checker.state_of(2) is HealthState.HEALTHY  # not forgotten as gone: the balancer may pick it at once
    registry.replace((before,))
    checker.settle()
    assert checker.state_of(2) is HealthState.UNKNOWN  # gone once the registry no longer has it
