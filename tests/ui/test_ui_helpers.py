"""Unit tests of the dashboard's building blocks: formatting, API client and bodies, login state, shaping, charts."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from contract.traffic import PickOut
from db.fleet import InstanceRow, ServiceRow
from db.models import Simulation
from db.queries import logs_csv
from ui import forms
from ui.chaos import active_banner, countdown
from ui.charts import annotate_simulations, line_mode, per_service_heatmap
from ui.data import breaker_segments, picks_frame, timeline_start
from ui.fleet import summaries
from ui.format import (
    breaker_label,
    fmt_ago,
    fmt_duration_ms,
    fmt_mb,
    fmt_ms,
    fmt_pct,
    fmt_rate,
    fmt_status,
    simulation_effect,
    simulation_params,
    status_colour,
)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fn", "value", "shown"),
    [
        (fmt_ms, None, "n/a"),
        (fmt_ms, math.nan, "n/a"),
        (fmt_ms, 0.0, "0.0 ms"),
        (fmt_ms, 1234.56, "1,234.6 ms"),
        (fmt_pct, None, "n/a"),
        (fmt_pct, 5.0, "5.0 %"),
        (fmt_pct, 0.05, "0.05 %"),
        (fmt_pct, 0.0, "0.0 %"),
        (fmt_mb, None, "n/a"),
        (fmt_mb, 64.25, "64.2 MB"),
        (fmt_rate, 0.0, "0.0"),
        (fmt_rate, None, "n/a"),
    ],
    ids=["ms-none", "ms-nan", "ms-zero", "ms-big", "pct-none", "pct", "pct-small", "pct-zero", "mb-none", "mb",
         "rate-zero", "rate-none"],
)
def test_formatting_never_turns_unknown_into_zero(fn, value, shown):
    assert fn(value) == shown


def test_fmt_ago_and_status():
    assert fmt_ago(None, T0) == "n/a"
    assert fmt_ago(T0 - timedelta(seconds=4), T0) == "4 s ago"
    assert fmt_ago(T0 - timedelta(minutes=3), T0) == "3 min ago"
    assert fmt_ago(T0 - timedelta(hours=2), T0) == "2 h ago"
    assert fmt_status("healthy") == "🟢 healthy"
    assert fmt_status("degraded") == "🟠 degraded"
    assert fmt_status(None) == "⚪ n/a"
    assert status_colour("unhealthy") != status_colour("healthy")
    assert status_colour("something-new") == status_colour("unknown")


def test_create_body_parses_urls_and_omits_blank_metrics_path():
    body = forms.create_body(" orders ", "http://a:1\n\n http://b:2 \nhttp://a:1\n", "/health", "  ", 2)
    assert body == {"name": "orders", "instances": ["http://a:1", "http://b:2"], "healthPath": "/health",
                    "weight": 2}
    assert forms.create_body("x", "http://a:1", "/h", "/metrics", 1)["metricsPath"] == "/metrics"


def test_update_body_holds_only_changed_fields():
    current = {"name": "orders", "healthPath": "/health", "metricsPath": "/metrics", "weight": 1,
               "instances": ["http://a:1"]}
    same: dict[str, Any] = {"name": "orders", "health_path": "/health", "metrics_path": "/metrics", "weight": 1}
    assert forms.update_body(current, **same, urls_text="http://a:1\n") == {}
    assert forms.update_body(current, **{**same, "weight": 4}, urls_text="http://a:1") == {"weight": 4}
    assert forms.update_body(current, **{**same, "metrics_path": " "}, urls_text=None) == {"metricsPath": None}
    assert forms.update_body(current, **same, urls_text="http://a:1\nhttp://b:2") == {
        "instances": ["http://a:1", "http://b:2"]}


def test_summaries_count_instances():
    rows = [
        ServiceRow(1, "orders", "healthy", None, True, "/health", "/metrics", 2, None, instances=(
            InstanceRow(10, "http://a:1", "healthy", T0, 3.0, 1, None),
            InstanceRow(11, "http://a:2", "unhealthy", T0 + timedelta(seconds=5), None, 1, "refused"))),
        ServiceRow(2, "lonely", "unknown", None, False, "/health", None, 1, None),
    ]
    orders, lonely = summaries(rows)
    assert (orders.id, orders.name, orders.instance_count, orders.healthy_count) == (1, "orders", 2, 1)
    assert orders.urls == ("http://a:1", "http://a:2")
    assert orders.last_check == T0 + timedelta(seconds=5)
    assert orders.as_api()["metricsPath"] == "/metrics"
    assert (lonely.instance_count, lonely.healthy_count, lonely.last_check, lonely.metrics_path) == (0, 0, None, None)


def test_heatmap_keeps_gaps_and_skips_unmeasured_services():
    # orders: a value, a NULL (not scraped), no row at all, a value; inventory one value later; payments nothing
    frame = pd.DataFrame({
        "service": ["orders", "orders", "orders", "payments", "inventory"],
        "bucket": [T0, T0 + timedelta(seconds=5), T0 + timedelta(seconds=15), T0, T0 + timedelta(seconds=10)],
        "step_s": 5,
        "cpu_percent": [10.0, None, 30.0, None, 7.5],
    })
    fig = per_service_heatmap(frame, "cpu_percent", "CPU", "CPU (%)", T0, T0 + timedelta(minutes=1))
    assert fig is not None
    (heat,) = fig.data
    assert heat.type == "heatmap" and list(heat.y) == ["inventory", "orders"]  # by name; payments has no row
    assert (pd.Timestamp(heat.x0), heat.dx) == (pd.Timestamp("2026-01-01 12:00:00"), 5000.0)
    inventory, orders = (list(row) for row in heat.z)
    assert orders[0] == 10.0 and orders[3] == 30.0 and inventory[2] == 7.5
    # empty cells, not zeros, and not filled in from the neighbours
    assert all(math.isnan(v) for v in (orders[1], orders[2], inventory[0], inventory[1], inventory[3]))
    assert heat.connectgaps is False
    assert fig.layout.xaxis.range == ("2026-01-01T12:00:00", "2026-01-01T12:01:00")
    assert heat.colorbar.title.text == "CPU (%)" and "CPU (%): %{z:,.1f}" in heat.hovertemplate
    assert per_service_heatmap(frame[frame.service == "payments"], "cpu_percent", "CPU", "%", T0, T0) is None
    assert per_service_heatmap(frame.iloc[0:0], "cpu_percent", "CPU", "%", T0, T0) is None


def test_logs_csv_writes_iso_times_and_json_metadata():
    frame = pd.DataFrame({
        "id": [2, 1], "timestamp": [T0, T0], "level": ["ERROR", "INFO"], "source": ["health", "api"],
        "message": ["down, again", "ok"], "metadata": [None, {"b": 1, "a": [1, 2]}],
    })
    lines = logs_csv(frame).splitlines()
    assert lines[0] == "id,timestamp,level,source,message,metadata"
    assert lines[1] == '2,2026-01-01T12:00:00+00:00,ERROR,health,"down, again",'
    assert lines[2] == '1,2026-01-01T12:00:00+00:00,INFO,api,ok,"{""a"": [1, 2], ""b"": 1}"'


# -- traffic: load balancer and breakers ---------------------------------------------------------------


def test_breaker_body_holds_only_changed_thresholds():
    current = {"serviceName": "orders", "state": "OPEN", "failureThreshold": 5, "failureRateThreshold": 50.0,
               "windowSize": 20, "minimumCalls": 10, "slowCallMs": None, "timeout": 60000, "halfOpenCalls": 1}
    same = {f: current[f] for f in forms.BREAKER_FIELDS}
    assert forms.breaker_body(current, same) == {}
    assert forms.breaker_body(current, {**same, "failureThreshold": 3, "slowCallMs": 250.0}) == {
        "failureThreshold": 3, "slowCallMs": 250.0}
    assert forms.breaker_body({**current, "slowCallMs": 250.0}, same) == {"slowCallMs": None}  # cleared: off
    assert forms.breaker_body(current, {"state": "CLOSED", "windowSize": 20}) == {}  # only thresholds are sent


def test_picks_frame_shares_within_each_service():
    def inst(service, iid, picks, ejected=False):
        return PickOut.model_validate({"service": service, "instanceId": iid, "url": f"http://127.0.0.1:{7000 + iid}",
                                       "picks": picks, "inFlight": iid % 2, "health": "healthy", "ejected": ejected})

    frame = picks_frame([inst("orders", 1, 30), inst("orders", 2, 10, ejected=True), inst("payments", 3, 0)])
    assert frame["share"].tolist()[:2] == [75.0, 25.0]
    assert math.isnan(frame["share"].iloc[2])  # a service without picks: unknown share, not 0 %
    assert frame["ejected"].tolist() == [False, True, False]
    assert frame["in_flight"].tolist() == [1, 0, 1]
    assert picks_frame([]).empty


def test_breaker_segments_span_the_window_per_service():
    since, now = T0, T0 + timedelta(minutes=10)
    transitions = pd.DataFrame(
        [
            [T0 + timedelta(minutes=2), "orders", "CLOSED", "OPEN", "5 consecutive failures"],
            [T0 + timedelta(minutes=3), "orders", "OPEN", "HALF_OPEN", "open for 60000 ms"],
            [T0 + timedelta(minutes=4), "payments", "HALF_OPEN", "OPEN", "trial call failed"],
            [T0 + timedelta(minutes=5), "orders", "HALF_OPEN", "CLOSED", "1 trial call(s) succeeded"],
        ],
        columns=["at", "service_name", "from_state", "to_state", "reason"],
    )
    segments = breaker_segments(transitions, since, now)
    def minutes(t: Any) -> float:
        return (pd.Timestamp(t) - T0).total_seconds() / 60

    rows = [(svc, state, minutes(start), minutes(end), why) for svc, state, start, end, why in segments.to_numpy()]
    assert rows == [
        ("orders", "CLOSED", 0, 2, ""),
        ("orders", "OPEN", 2, 3, "5 consecutive failures"),
        ("orders", "HALF_OPEN", 3, 5, "open for 60000 ms"),
        ("orders", "CLOSED", 5, 10, "1 trial call(s) succeeded"),
        ("payments", "HALF_OPEN", 0, 4, ""),  # the state before the first transition: its from_state
        ("payments", "OPEN", 4, 10, "trial call failed"),
    ]
    assert breaker_segments(transitions.iloc[0:0], since, now).empty
    # the time axis starts a minute (or a tenth of the span) before the first transition, not before the window
    assert timeline_start(transitions, since, now) == T0 + timedelta(minutes=1)
    assert timeline_start(transitions, since, T0 + timedelta(minutes=32)) == T0  # 3 min pad, cut at `since`
    assert timeline_start(transitions.iloc[0:0], since, now) == since
    assert breaker_label("OPEN") == "🔴 OPEN"
    assert breaker_label("HALF_OPEN") == "🟠 HALF_OPEN"
    assert breaker_label(None) == "⚪ n/a"


# -- failure simulations: words, countdown, chart spans ------------------------------------------------------


@pytest.mark.parametrize(("ms", "shown"), [(None, "n/a"), (0.0, "0 ms"), (450.0, "450 ms"), (2000.0, "2 s"),
                                           (2500.0, "2.5 s"), (60_000.0, "1 min"), (90_000.0, "1 min 30 s"),
                                           (3_600_000.0, "1 h"), (7_500_000.0, "2 h 5 min")],
                         ids=["none", "zero", "ms", "s", "s-fraction", "min", "min-s", "h", "h-min"])
def test_fmt_duration_ms(ms, shown):
    assert fmt_duration_ms(ms) == shown


@pytest.mark.parametrize(("kind", "params", "words"), [
    ("service-failure", {"duration": 30_000, "probability": 1.0, "statusCode": None, "mode": "error"},
     "connection errors on every request for 30 s"),
    ("service-failure", {"duration": 500, "probability": 0.125, "statusCode": 429, "mode": "error"},
     "HTTP 429 on 12.5 % of requests for 500 ms"),
    ("network-latency", {"duration": 60_000, "latency": 1500.0, "jitter": 250.0, "probability": 1.0},
     "+1,500 ms ± 250 ms on every request for 1 min"),
    ("database-overload", {"duration": 10_000, "intensity": "medium"}, "medium intensity for 10 s"),
    ("memory-leak", {"duration": 60_000, "rate": 100.0, "capMb": 512}, "100 MB/s for 1 min, up to 512 MB (cap 512 MB)"),
    ("memory-leak", {"duration": 2000, "rate": 0.5}, "0.5 MB/s for 2 s, up to 1 MB"),
    ("something-new", {"a": 1}, '{"a": 1}'),
], ids=["failure-connection", "failure-status", "latency-jitter", "overload", "leak-capped", "leak-no-cap", "unknown"])
def test_simulation_params_in_words(kind, params, words):
    assert simulation_params(kind, params) == words


@pytest.mark.parametrize(("status", "effect", "words"), [
    ("completed", {"requestsAffected": 0}, "no request affected"),
    ("completed", {"requestsAffected": 12345}, "12,345 requests affected"),
    ("stopped", {"writeLatencyMs": {"before": {"batches": 0, "p50": None, "p95": None, "max": None},
                                    "during": {"batches": 3, "p50": 2.0, "p95": 3.25, "max": None}},
                 "connections": 1, "lockHolder": False, "statements": 1},
     "write latency p95 n/a → 3.2 ms, 1 busy connection, 1 statement"),
    ("completed", {"heldMb": 0, "rssMbBefore": None, "rssMbAtEnd": 90.0, "rssMbAfterRelease": None}, "held 0 MB"),
    ("stopped", {"error": "RuntimeError: boom"}, "not measured: RuntimeError: boom"),
    ("completed", {"other": True}, '{"other": true}'),
    ("active", None, "in effect"),
    ("completed", None, "n/a"),
], ids=["none-affected", "many-affected", "overload-unknown-before", "leak-partial", "error", "unknown", "active",
        "missing"])
def test_simulation_effect_in_words_keeps_unknowns_unknown(status, effect, words):
    assert simulation_effect(status, effect) == words


def _sim(sim_id: int, kind: str, status: str, start: datetime, seconds: float, ended: datetime | None = None,
         target: str | None = None) -> Simulation:
    return Simulation(id=sim_id, kind=kind, target=target, params={}, status=status, started_at=start,
                      ends_at=start + timedelta(seconds=seconds), ended_at=ended, effect=None)


def test_countdown_and_banner():
    c = countdown(T0, T0 + timedelta(seconds=60), T0 + timedelta(seconds=15))
    assert (c.remaining_s, c.done, c.overdue_s, c.left()) == (45.0, 0.25, 0.0, "45 s left")
    assert countdown(T0, T0 + timedelta(seconds=60), T0 + timedelta(seconds=15.5)).left() == "45 s left"  # rounded up
    late = countdown(T0, T0 + timedelta(seconds=60), T0 + timedelta(seconds=65))
    assert (late.remaining_s, late.done, late.overdue_s, late.left()) == (0.0, 1.0, 5.0, "ending now")
    sims = [_sim(1, "network-latency", "active", T0, 600), _sim(2, "service-failure", "active", T0, 90, None, "orders"),
            _sim(3, "memory-leak", "completed", T0, 10, T0 + timedelta(seconds=10))]
    assert active_banner(sims, T0 + timedelta(seconds=30)) == (
        "2 failure simulations are active: service failure on orders (1 min left); "
        "network latency on every service (9 min 30 s left).")
    assert active_banner(sims[2:], T0) is None


def test_annotate_simulations_spans_clip_to_the_window_and_can_use_seconds():
    import plotly.graph_objects as go

    now = T0 + timedelta(minutes=10)
    sims = [_sim(1, "memory-leak", "completed", T0, 120, T0 + timedelta(minutes=2)),
            _sim(2, "database-overload", "active", T0 + timedelta(minutes=8), 600),
            _sim(3, "network-latency", "failed", T0 + timedelta(minutes=5), 60, T0 + timedelta(minutes=5)),
            _sim(4, "service-failure", "stopped", T0 - timedelta(hours=1), 60, T0 - timedelta(minutes=59), "orders")]
    fig = annotate_simulations(go.Figure(), sims, now, since=T0 + timedelta(minutes=1))
    assert [(s.name, s.x0, s.x1) for s in fig.layout.shapes] == [
        ("simulation 1", "2026-01-01T12:01:00", "2026-01-01T12:02:00"),  # clipped to the window's start
        ("simulation 2", "2026-01-01T12:08:00", "2026-01-01T12:10:00"),  # active: up to now
    ]
    assert [a.text for a in fig.layout.annotations] == ["#1 memory leak", "#2 db overload"]
    assert fig.layout.xaxis.range == ("2026-01-01T12:01:00", "2026-01-01T12:10:00")  # not widened for the labels
    assert fig.layout.shapes[0].fillcolor != fig.layout.shapes[1].fillcolor  # a colour per kind
    assert [a.y for a in fig.layout.annotations] == [1.0, 1.0]  # apart in time: labels on one row
    # a label would run past the right edge: it ends where its span ends instead of starting where it starts
    assert [(a.x, a.xanchor) for a in fig.layout.annotations] == [
        ("2026-01-01T12:01:00", "left"), ("2026-01-01T12:10:00", "right")]
    together = [_sim(5, "memory-leak", "active", T0, 600), _sim(6, "network-latency", "active", T0, 600),
                _sim(7, "service-failure", "active", T0 + timedelta(seconds=5), 600, None, "orders")]
    stacked = annotate_simulations(go.Figure(), together, now)
    assert [(a.text, round(a.y, 2)) for a in stacked.layout.annotations] == [
        ("#5 memory leak", 1.0), ("#6 latency · all", 0.91), ("#7 failure · orders", 0.82)]  # one under the other
    assert annotate_simulations(go.Figure(), sims[2:], now, since=T0).layout.xaxis.range is None  # none: untouched
    # a load test's per-second axis: seconds since the run began
    run = annotate_simulations(go.Figure(), sims[:2], now, origin=T0 + timedelta(minutes=7))
    assert [(s.x0, s.x1) for s in run.layout.shapes] == [(-420.0, -300.0), (60.0, 180.0)]
    assert run.layout.xaxis.range == (-420.0, 180.0)


def test_a_line_without_lone_values_has_no_markers():
    assert line_mode(np.array([1.0, 2.0, np.nan, 3.0, 4.0])) == {"mode": "lines"}
    lone = line_mode(np.array([1.0, np.nan, 3.0, 4.0, np.nan, 6.0]))
    assert lone["mode"] == "lines+markers" and list(lone["marker"]["size"]) == [5, 0, 0, 0, 0, 5]


def test_per_service_heatmap_draws_times_as_naive_utc():
    from datetime import timezone

    berlin = timezone(timedelta(hours=1))
    frame = pd.DataFrame({"service": ["orders"], "bucket": [T0.astimezone(berlin)], "step_s": 5,
                          "cpu_percent": [5.0]})
    fig = per_service_heatmap(frame, "cpu_percent", "CPU", "%", T0.astimezone(berlin), T0 + timedelta(minutes=15))
    assert fig is not None
    assert pd.Timestamp(fig.data[0].x0) == pd.Timestamp("2026-01-01 12:00:00")  # 13:00+01:00 drawn at 12:00 UTC
    assert fig.layout.xaxis.range == ("2026-01-01T12:00:00", "2026-01-01T12:15:00")


# -- one look: the state colours come from ui.format, the same meaning in the same colour ------------------------


def test_health_and_breaker_states_share_one_palette():
    from ui.format import (
        BREAKER_COLOURS,
        BREAKER_EMOJI,
        STATUS_COLOURS,
        STATUS_EMOJI,
        breaker_badge_colour,
        status_badge_colour,
    )

    # good / in between / bad: healthy and CLOSED, degraded and HALF_OPEN, unhealthy and OPEN look alike
    pairs = [("healthy", "CLOSED"), ("degraded", "HALF_OPEN"), ("unhealthy", "OPEN")]
    for status, state in pairs:
        assert STATUS_COLOURS[status] == BREAKER_COLOURS[state]
        assert STATUS_EMOJI[status] == BREAKER_EMOJI[state]
        assert status_badge_colour(status) == breaker_badge_colour(state)
    assert len({STATUS_COLOURS[s] for s, _ in pairs}) == 3  # and the three differ


def test_pages_take_state_colours_from_ui_format_only():
    root = Path(__file__).resolve().parents[2]
    literals = ("🟢", "🟠", "🔴", "🟡", "#21c354", "#ffa421", "#ff4b4b", ":green-badge", ":orange-badge", ":red-badge")
    offenders = [f"{path.relative_to(root)}: {lit}" for path in [root / "app.py", *(root / "pages").glob("*.py")]
                 for lit in literals if lit in path.read_text()]
    assert not offenders, offenders
