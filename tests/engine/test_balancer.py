"""Balancer algorithms: distributions, weights, load awareness, hashing stability."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from contract.traffic import Algorithm
from engine.traffic.balancer import ALGORITHMS, Target, UnknownAlgorithm, make_balancer


def targets(n, weights=None):
    return [Target(i, f"http://127.0.0.1:{9000 + i}", weight=(weights or [1] * n)[i]) for i in range(n)]


def spread(name, ts, picks, key=None, seed=7):
    balancer = make_balancer(name, random.Random(seed))
    return Counter(balancer.pick(ts, key(n) if key else None).id for n in range(picks))


@pytest.mark.parametrize("name", sorted(ALGORITHMS), ids=sorted(ALGORITHMS))
def test_every_algorithm_spreads_evenly_over_equal_idle_targets(name):
    counts = spread(name, targets(4), 4000, key=(lambda n: f"user-{n}") if name == "consistent-hash" else None)
    assert set(counts) == {0, 1, 2, 3}
    tolerance = 0.0 if name in {"round-robin", "least-load", "weighted"} else 0.2
    for c in counts.values():
        assert abs(c - 1000) <= 1000 * tolerance, counts


def test_round_robin_is_strictly_in_turn():
    ts = targets(3)
    b = make_balancer("round-robin")
    assert [b.pick(ts).id for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]


def test_round_robin_over_fewer_candidates_still_alternates():
    ts = targets(3)
    b = make_balancer("round-robin")
    survivors = [ts[0], ts[2]]  # instance 1 is unhealthy: the router leaves it out
    assert Counter(b.pick(survivors).id for _ in range(1000)) == {0: 500, 2: 500}


def test_smooth_weighted_interleaves_by_weight():
    ts = targets(3, weights=[5, 1, 1])
    b = make_balancer("weighted")
    seq = [b.pick(ts).id for _ in range(7)]
    assert seq == [0, 0, 1, 0, 2, 0, 0]  # nginx's documented sequence for 5:1:1
    assert Counter(b.pick(ts).id for _ in range(7000)) == {0: 5000, 1: 1000, 2: 1000}


@pytest.mark.parametrize("name", ["least-load", "p2c"], ids=["least-load", "p2c"])
def test_load_aware_algorithms_avoid_the_busy_target(name):
    ts = targets(4)
    ts[2].in_flight = 50
    counts = spread(name, ts, 3000)
    assert counts[2] == 0 if name == "least-load" else counts[2] < 3000 * 0.25 * 0.6


def test_least_load_follows_in_flight_counts():
    ts = targets(3)
    b = make_balancer("least-load")
    for _ in range(6):  # the router adds one in flight per pick and never finishes them here
        b.pick(ts).in_flight += 1
    assert [t.in_flight for t in ts] == [2, 2, 2]


def test_consistent_hash_keeps_keys_and_moves_few_when_a_target_leaves():
    ts = targets(5)
    b = make_balancer("consistent-hash")
    keys = [f"session-{n}" for n in range(2000)]
    before = {k: b.pick(ts, k).id for k in keys}
    assert before == {k: b.pick(ts, k).id for k in keys}  # stable
    gone = ts[3]
    after = {k: b.pick([t for t in ts if t is not gone], k).id for k in keys}
    moved = [k for k in keys if before[k] != after[k]]
    assert all(before[k] == gone.id for k in moved)  # only the removed target's keys move
    assert 0.1 * len(keys) < len(moved) < 0.3 * len(keys)


def test_unknown_algorithm_lists_the_valid_ones():
    with pytest.raises(UnknownAlgorithm) as err:
        make_balancer("fastest")
    assert err.value.status == 400
    assert "round-robin" in err.value.message and "p2c" in err.value.message
    assert err.value.details[0]["field"] == "algorithm"


def test_the_registry_holds_every_algorithm_the_contract_names():
    assert set(ALGORITHMS) == set(Algorithm)
    assert all(make_balancer(a.value).name is a for a in Algorithm)


def test_single_target_is_always_picked():
    for name in ALGORITHMS:
        assert make_balancer(name).pick(targets(1), "k").id == 0
