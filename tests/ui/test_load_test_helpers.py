"""Unit tests of the Load Test page's building blocks: its API calls and form body, the whole-run tables and the
per-second chart builders."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from typing import Any

import httpx
import pandas as pd

from contract.loadtest import LatencyPairOut, LoadTestOut
from tests.ui.test_load_test_page import RUN_1, RUN_2, T0, lat, same
from ui import api, forms
from ui import load_test as lt


def test_load_test_calls_use_their_routes_and_the_form_body():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, json.loads(request.content) if request.content else None,
                     request.headers.get("Authorization")))
        return httpx.Response(202 if request.url.path.endswith("start") else 200, json={"status": "running"})

    c = api.ApiClient("http://api.test", token="op", transport=httpx.MockTransport(handler))
    body = forms.load_test_body(5, 20.0, 30.0, "orders", " /work?ms=1 ", "POST")
    assert body == {"concurrentUsers": 5, "requestsPerSecond": 20.0, "duration": 30.0, "path": "/work?ms=1",
                    "method": "POST", "targetService": "orders"}
    assert forms.load_test_body(1, 1.0, 1.0, None, "", "GET") == {
        "concurrentUsers": 1, "requestsPerSecond": 1.0, "duration": 1.0, "path": "/", "method": "GET"}
    assert c.start_load_test(body) == LoadTestOut.model_validate({"status": "running"})
    c.stop_load_test()
    c.load_test_status()
    assert seen == [
        ("POST", "/api/load-test/start", body, "Bearer op"),
        ("POST", "/api/load-test/stop", None, "Bearer op"),
        ("GET", "/api/load-test/status", None, "Bearer op"),
    ]


def test_latency_and_error_tables_keep_unknowns_unknown():
    table_ = lt.latency_table(LatencyPairOut.model_validate({"corrected": lat(1, 2, 3, 4, None, 6, 2.5),
                                                             "uncorrected": lat(*[None] * 7)}))
    assert table_["figure"].tolist() == ["p50", "p90", "p95", "p99", "p99.9", "max", "mean"]
    assert same(table_["corrected ms"].tolist(), [1, 2, 3, 4, None, 6, 2.5])
    assert table_["uncorrected ms"].isna().all()
    assert lt.latency_table(None)["corrected ms"].isna().all()
    errors = lt.error_table({"timeout": 1, "http_503": 3, "http_500": 1}, 50)
    assert errors["kind"].tolist() == ["http_503", "http_500", "timeout"]  # most first, then by name
    assert errors["share %"].tolist() == [6.0, 2.0, 2.0]
    assert math.isnan(lt.error_table({"timeout": 1}, 0)["share %"][0])  # nothing answered: n/a, not 0 %
    assert lt.error_table(None, 10).empty


def samples_frame(rows: list[Any]) -> pd.DataFrame:
    """Seed rows shaped like db.queries.load_test_samples_frame."""
    out = []
    for sec, sent, ok, failed, dropped, errors, corr, unc in rows:
        row = {"second": sec, "at": (T0 + timedelta(seconds=sec)).isoformat(), "sent": sent, "ok": ok,
               "failed": failed, "dropped": dropped, "errors": json.dumps(errors, sort_keys=True) if errors else ""}
        row.update({f"corrected_{k}_ms": v for k, v in corr.items()})
        row.update({f"uncorrected_{k}_ms": v for k, v in unc.items()})
        out.append(row)
    return pd.DataFrame(out)


def built(fig: Any | None) -> Any:
    """A figure a builder had to build."""
    assert fig is not None
    return fig


def test_rate_chart_draws_requested_over_the_duration():
    fig = built(lt.load_test_rate(samples_frame(RUN_1), 100.0, 3.0))
    assert [t.name for t in fig.data] == ["requested", "sent (achieved)", "answered OK"]
    assert (list(fig.data[0].x), list(fig.data[0].y)) == ([0, 3.0], [100.0, 100.0])
    assert list(fig.data[1].y) == [100, 100, 90] and list(fig.data[1].x) == [1, 2, 3]
    assert fig.data[0].line.dash == "dash"
    assert lt.load_test_rate(pd.DataFrame(), 100.0, 3.0) is None
    # answers to the last requests arrive in a drain second with nothing sent: no sent point there, not a 0
    drain: tuple[Any, ...] = (4, 0, 7, 0, 0, {}, lat(*[50] * 7), lat(*[40] * 7))
    fig = built(lt.load_test_rate(samples_frame([*RUN_1, drain]), 100.0, 3.0))
    assert list(fig.data[1].y) == [100, 100, 90] and list(fig.data[2].y) == [98, 97, 90, 7]
    overlay = built(lt.load_test_overlay([("#1", samples_frame([*RUN_1, drain]))]))
    assert list(overlay.data[0].y) == [100, 100, 90] and list(overlay.data[1].x) == [1, 2, 3, 4]


def test_latency_chart_dashes_uncorrected_and_keeps_gaps():
    fig = built(lt.load_test_latency(samples_frame(RUN_2), ("p50", "p99")))
    assert [t.name for t in fig.data] == ["p50 corrected", "p99 corrected", "p50 uncorrected", "p99 uncorrected"]
    assert same(list(fig.data[1].y), [15.0, None])  # second 2 had no answer: a gap
    assert [t.line.dash for t in fig.data] == ["solid", "solid", "dash", "dash"]
    assert fig.data[0].line.color == fig.data[2].line.color  # same percentile, same colour
    assert [t.name for t in built(lt.load_test_latency(samples_frame(RUN_2), uncorrected=False)).data] == [
        "p50 corrected", "p95 corrected", "p99 corrected"]
    assert lt.load_test_latency(samples_frame(RUN_2[1:])) is None  # no latency at all
    assert lt.load_test_latency(pd.DataFrame()) is None


def test_errors_chart_stacks_kinds_and_dropped():
    fig = built(lt.load_test_errors(samples_frame(RUN_1)))
    assert {t.name: list(t.y) for t in fig.data} == {
        "http_503": [2, 1, 0], "timeout": [0, 2, 0], "dropped": [0, 0, 10]}
    assert fig.layout.barmode == "stack"
    clean = built(lt.load_test_errors(samples_frame(RUN_2)))
    assert {t.name: list(t.y) for t in clean.data} == {"failed": [0, 0], "dropped": [0, 0]}
    # failures the errors column does not name still show, as "failed"
    unnamed = samples_frame([(1, 10, 6, 4, 0, {"timeout": 1}, lat(*[None] * 7), lat(*[None] * 7))])
    assert {t.name: list(t.y) for t in built(lt.load_test_errors(unnamed)).data} == {
        "failed": [3], "timeout": [1], "dropped": [0]}
    assert lt.load_test_errors(pd.DataFrame()) is None


def test_overlay_puts_both_runs_on_the_same_axes():
    fig = built(lt.load_test_overlay([("#1", samples_frame(RUN_1)), ("#2", samples_frame(RUN_2))]))
    assert [(t.name, t.xaxis, t.yaxis) for t in fig.data] == [
        ("#1 req/s", "x", "y"), ("#1 p99", "x2", "y2"), ("#2 req/s", "x", "y"), ("#2 p99", "x2", "y2")]
    assert list(fig.data[2].y) == [50, 25] and list(fig.data[2].x) == [1, 2]
    assert fig.data[0].line.color == fig.data[1].line.color != fig.data[2].line.color
    only = built(lt.load_test_overlay([("#1", samples_frame(RUN_1)), ("#2", pd.DataFrame())]))
    assert [t.name for t in only.data] == ["#1 req/s", "#1 p99"]
    assert lt.load_test_overlay([("#1", pd.DataFrame())]) is None
