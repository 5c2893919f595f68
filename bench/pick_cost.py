"""Cost of one balancer pick at 10, 100 and 1,000 instances, per algorithm (goal: p2c at 1,000 <= 2x at 10)."""

from __future__ import annotations

import random
import sys
import timeit

import bench.common  # noqa: F401 - puts the project on sys.path
from engine.traffic.balancer import ALGORITHMS, Target, make_balancer

SIZES = (10, 100, 1000)
PICKS = 20_000


def pick_ns(name: str, n: int) -> float:
    """Median ns per pick over 5 runs (in_flight varies so load-aware algorithms do their real work)."""
    rng = random.Random(3)
    targets = [Target(i, f"http://127.0.0.1:{10000 + i}", weight=1 + i % 3, in_flight=rng.randrange(5))
               for i in range(n)]
    balancer = make_balancer(name, random.Random(1))
    keys = [f"user-{k}" for k in range(PICKS)]
    it = iter(keys * 10)

    def one() -> None:
        balancer.pick(targets, next(it))

    one()  # build rings and the like outside the timing
    runs = timeit.repeat(one, number=PICKS, repeat=5)
    return sorted(runs)[2] / PICKS * 1e9


def main() -> int:
    ok = True
    print(f"{'algorithm':16}" + "".join(f"{n:>12} inst" for n in SIZES) + "   1000/10")
    for name in sorted(ALGORITHMS):
        costs = [pick_ns(name, n) for n in SIZES]
        ratio = costs[-1] / costs[0]
        print(f"{name:16}" + "".join(f"{c:>14.0f} ns" for c in costs) + f"   {ratio:6.2f}x")
        if name == "p2c":
            ok = ratio <= 2.0
            verdict = "ok" if ok else "OVER"
            print(f"p2c pick cost at 1,000 instances is {ratio:.2f}x its cost at 10 (limit 2.00x: {verdict})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
