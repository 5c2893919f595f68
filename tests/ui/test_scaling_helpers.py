"""Unit tests of the Scaling page's building blocks: decisions and settings in words, service rows, the
instances-per-service steps and chart."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from contract.scaling import AutoscalerConfig, AutoscalerOut, ScalingOut

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("metric", "value", "target", "words"), [
    ("inflight", 7.5, 5.0, "7.5 vs target 5 in flight / instance"),
    ("cpu", 62.14, 50.0, "62.1 % vs target 50 % CPU"),
    ("p95", 1250.4, 200.0, "1,250 ms vs target 200 ms p95"),
    ("inflight", 0.3333, 0.5, "0.333 vs target 0.5 in flight / instance"),
    ("cpu", None, 50.0, "n/a vs target 50 % CPU"),
    ("p95", math.nan, 200.0, "n/a vs target 200 ms p95"),
    (None, None, None, None),
], ids=["inflight", "cpu", "p95-thousands", "small", "not-measured", "nan", "manual"])
def test_metric_vs_target_in_words(metric, value, target, words):
    from ui.format import metric_vs_target

    assert metric_vs_target(metric, value, target) == words


def test_autoscaler_summary_and_metric_units():
    from ui.format import autoscaler_summary, fmt_metric

    assert autoscaler_summary(None) == "off"
    settings: dict[str, Any] = {"metric": "p95", "target": 250.0, "tolerance": 0.05}
    assert autoscaler_summary(AutoscalerConfig(**settings)) == "target 250 ms p95 ± 5 %"
    answer = AutoscalerOut.model_validate({**settings, "enabled": True, "minInstances": 1, "maxInstances": 3,
                                           "scaleUpWindowS": 0.0, "scaleDownWindowS": 300.0, "maxStep": 4})
    assert autoscaler_summary(answer) == "target 250 ms p95 ± 5 %"  # an API answer reads the same
    assert fmt_metric("cpu", None) == "n/a"
    assert fmt_metric("inflight", 0.0) == "0 in flight / instance"  # measured zero stays zero


def _service(sid: int, name: str, count: int, *, managed: bool = True, low: int = 1, high: int = 3):
    from db.models import Instance, Service

    return Service(id=sid, name=name, status="healthy", launch_command="cmd {port}" if managed else None,
                   min_instances=low, max_instances=high, autoscaler=None,
                   instances=[Instance(url=f"http://127.0.0.1:{7000 + i}", status="healthy" if i else "unhealthy")
                              for i in range(count)])


def test_scaling_rows_follow_the_apis_rule_and_keep_unknown_load_unknown():
    from ui.scaling import EXTERNAL, scaling_rows

    services = [_service(1, "low", 1), _service(2, "mid", 2), _service(3, "top", 3), _service(4, "ext", 2,
                                                                                             managed=False)]
    def entry(sid: int, load: int) -> dict[str, Any]:
        return {"id": sid, "name": f"s{sid}", "instanceCount": 1, "load": load, "status": "healthy", "managed": True,
                "canScaleUp": True, "canScaleDown": True, "minInstances": 1, "maxInstances": 3, "autoscaler": None}

    live = ScalingOut.model_validate({"totalInstances": 8, "services": [entry(1, 0), entry(2, 7)]})
    rows = scaling_rows(services, live, None)
    assert [(r.name, r.instance_count, r.healthy_count, r.load) for r in rows] == [
        ("low", 1, 0, 0), ("mid", 2, 1, 7), ("top", 3, 2, None), ("ext", 2, 1, None)]  # not in the answer: n/a
    assert [(r.up_blocked is None, r.down_blocked is None) for r in rows] == [
        (True, False), (True, True), (False, True), (False, False)]
    assert rows[0].down_blocked == "At its minimum of 1 instance(s): lower it in the autoscaler settings below."
    assert rows[2].up_blocked == "At its maximum of 3 instance(s): raise it in the autoscaler settings below."
    assert rows[3].up_blocked == rows[3].down_blocked == EXTERNAL
    viewer = scaling_rows(services, None, "Needs the operator role.")
    assert [r.load for r in viewer] == [None] * 4  # no API answer: every load unknown
    assert [(r.up_blocked, r.down_blocked) for r in viewer][1] == ("Needs the operator role.",) * 2
    assert viewer[3].up_blocked == EXTERNAL


def _steps(*rows: tuple[str, int, int, int, str]) -> pd.DataFrame:
    """scaling_steps rows: (service, minute, from, to, direction)."""
    return pd.DataFrame(
        [[T0 + timedelta(minutes=m), svc, "manual", d, a, b, None, None, None, "why"] for svc, m, a, b, d in rows],
        columns=["timestamp", "service_name", "source", "direction", "from_count", "to_count", "metric",
                 "metric_value", "target", "reason"])


def test_instance_steps_start_at_the_earliest_known_count_and_run_to_now():
    from ui.scaling import instance_steps

    since, now = T0, T0 + timedelta(minutes=10)
    steps = _steps(("a", 2, 2, 3, "up"), ("b", 3, 4, 4, "none"), ("a", 5, 3, 1, "down"), ("b", 6, 2, 2, "none"))
    points = instance_steps({"a": 2, "c": 5}, steps, since, now)

    def minutes(t: Any) -> float:
        return (pd.Timestamp(t) - T0).total_seconds() / 60

    assert [(s, minutes(t), n) for s, t, n in points.to_numpy()] == [
        ("a", 0, 2), ("a", 2, 3), ("a", 5, 1), ("a", 10, 1),  # from the window's start: the count before it
        ("b", 3, 4), ("b", 6, 2), ("b", 10, 2),  # from its first decision; 4 -> 2 without a decision (a restart)
        ("c", 0, 5), ("c", 10, 5),  # no decision in the window: flat at the count the last one left
    ]
    assert instance_steps({}, steps.iloc[0:0], since, now).empty


def test_instance_counts_chart_marks_ups_and_downs_on_rows_sharing_one_y_range():
    from ui.scaling import instance_counts, instance_steps

    since, now = T0, T0 + timedelta(minutes=10)
    steps = _steps(("a", 2, 2, 3, "up"), ("a", 5, 3, 1, "down"), ("b", 1, 1, 1, "none"))
    fig = instance_counts(instance_steps({}, steps, since, now), steps)
    assert fig is not None
    assert [(t.name, list(t.y)) for t in fig.data] == [("a", [2, 3, 1, 1]), ("a scaling", [3, 1]), ("b", [1, 1])]
    assert list(fig.data[1].marker.symbol) == ["triangle-up", "triangle-down"]
    assert fig.layout.yaxis.range == fig.layout.yaxis2.range == (0, 4)  # rows compare
    assert (fig.layout.yaxis.title.text, fig.layout.yaxis2.title.text) == ("a", "b")
    assert fig.data[0].x[0] == pd.Timestamp("2026-01-01 12:02:00")  # naive UTC, as the other charts
    assert instance_counts(instance_steps({}, steps.iloc[0:0], since, now), steps.iloc[0:0]) is None
