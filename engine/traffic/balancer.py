"""Load-balancing algorithms behind one protocol, chosen by name (contract.traffic.Algorithm) from a registry.

Each service gets its own balancer (counters and rings are per service). `pick` receives only the
candidates the router already admitted (healthy or degraded, not ejected, breaker closed), in a
stable order, and must not be handed an empty list.
"""

from __future__ import annotations

import bisect
import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from contract.errors import ValidationFailed
from contract.traffic import Algorithm

__all__ = ["ALGORITHMS", "Algorithm", "Balancer", "Target", "UnknownAlgorithm", "make_balancer"]


@dataclass(eq=False)
class Target:
    """An instance as the balancer sees it; in_flight is kept by the router."""

    id: int
    url: str
    weight: int = 1
    in_flight: int = 0
    picks: int = 0
    current_weight: int = field(default=0, repr=False)  # smooth weighted round-robin state


class Balancer(Protocol):
    """Chooses one target per request."""

    name: Algorithm

    def pick(self, targets: Sequence[Target], key: str | None = None) -> Target:
        """One of targets (never empty); key is the request's hash key, if any."""
        ...


class RoundRobin:
    """Each target in turn."""

    name = Algorithm.ROUND_ROBIN

    def __init__(self, rng: random.Random) -> None:
        self._next = 0

    def pick(self, targets: Sequence[Target], key: str | None = None) -> Target:
        """The next target after the last one picked."""
        target = targets[self._next % len(targets)]
        self._next += 1
        return target


class LeastLoad:
    """Fewest requests in flight; ties go round-robin so equal targets share the load."""

    name = Algorithm.LEAST_LOAD

    def __init__(self, rng: random.Random) -> None:
        self._next = 0

    def pick(self, targets: Sequence[Target], key: str | None = None) -> Target:
        """The least busy target."""
        low = min(t.in_flight for t in targets)
        tied = [t for t in targets if t.in_flight == low]
        target = tied[self._next % len(tied)]
        self._next += 1
        return target


class SmoothWeighted:
    """nginx's smooth weighted round-robin: weight 3:1 gives a a b a, never a a a b."""

    name = Algorithm.WEIGHTED

    def __init__(self, rng: random.Random) -> None:
        pass

    def pick(self, targets: Sequence[Target], key: str | None = None) -> Target:
        """Raise every current weight by its weight, take the largest, lower it by the total."""
        total = 0
        best = targets[0]
        for t in targets:
            t.current_weight += t.weight
            total += t.weight
            if t.current_weight > best.current_weight:
                best = t
        best.current_weight -= total
        return best


class PowerOfTwo:
    """Two targets at random, the one with fewer requests in flight (O(1) in the number of targets)."""

    name = Algorithm.P2C

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def pick(self, targets: Sequence[Target], key: str | None = None) -> Target:
        """The less busy of two distinct random targets."""
        n = len(targets)
        if n == 1:
            return targets[0]
        i = self._rng.randrange(n)
        j = self._rng.randrange(n - 1)
        j += j >= i  # distinct from i, still uniform
        a, b = targets[i], targets[j]
        return a if a.in_flight <= b.in_flight else b


class ConsistentHash:
    """A hash ring with virtual nodes: a key keeps its target while the target set is unchanged,
    and only about 1/n of keys move when a target joins or leaves."""

    name = Algorithm.CONSISTENT_HASH
    VNODES = 100

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._ids: tuple[int, ...] = ()
        self._points: list[int] = []
        self._owners: list[int] = []

    @staticmethod
    def _hash(text: str) -> int:
        return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")

    def _build(self, targets: Sequence[Target]) -> None:
        ring = sorted((self._hash(f"{t.id}#{v}"), t.id) for t in targets for v in range(self.VNODES))
        self._points = [p for p, _ in ring]
        self._owners = [o for _, o in ring]
        self._ids = tuple(t.id for t in targets)

    def pick(self, targets: Sequence[Target], key: str | None = None) -> Target:
        """The first ring point at or after hash(key); a request without a key goes to a random target."""
        if key is None:
            return targets[self._rng.randrange(len(targets))]
        if tuple(t.id for t in targets) != self._ids:
            self._build(targets)
        index = bisect.bisect_left(self._points, self._hash(key)) % len(self._points)
        owner = self._owners[index]
        return next(t for t in targets if t.id == owner)


class Random:
    """Uniformly at random."""

    name = Algorithm.RANDOM

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def pick(self, targets: Sequence[Target], key: str | None = None) -> Target:
        """Any target, equally likely."""
        return targets[self._rng.randrange(len(targets))]


ALGORITHMS: dict[Algorithm, Callable[[random.Random], Balancer]] = {
    cls.name: cls for cls in (RoundRobin, LeastLoad, SmoothWeighted, PowerOfTwo, ConsistentHash, Random)
}


class UnknownAlgorithm(ValidationFailed):
    """A balancer name not in ALGORITHMS (400); the message lists the valid ones."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.valid = sorted(ALGORITHMS)
        message = f"unknown algorithm {name!r}; valid: {', '.join(self.valid)}"
        super().__init__([{"field": "algorithm", "message": message}], status=400)
        self.message = message


def make_balancer(name: str, rng: random.Random | None = None) -> Balancer:
    """A fresh balancer by name; rng is injected so tests are repeatable."""
    try:
        factory = ALGORITHMS[Algorithm(name)]
    except (ValueError, KeyError):
        raise UnknownAlgorithm(name) from None
    return factory(rng or random.Random())  # noqa: S311 - spreads load, not a secret
