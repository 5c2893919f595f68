"""The experiment report (one offline HTML file) and the comparison of two runs."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from contract.experiments import (
    ExperimentEventKind,
    ExperimentEventOut,
    ExperimentRunDetailOut,
    ExperimentRunOut,
    ThresholdMetric,
    ThresholdResultOut,
)
from engine.experiments.charts import fault_spans
from engine.experiments.compare import compare
from engine.experiments.report import render_html
from tests.engine.experiment_runs import HOSTILE, halted_run, passed_run


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text of each <style> block (script bodies are not parsed)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


def tags_of(page: str) -> Tags:
    parser = Tags()
    parser.feed(page)
    return parser


def json_block(page: str, element_id: str):
    found = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', page, re.S)
    assert found, element_id
    return json.loads(found.group(1))


@pytest.fixture(scope="module")
def run() -> ExperimentRunDetailOut:
    return halted_run()


@pytest.fixture(scope="module")
def page(run) -> str:
    return render_html(run)


def test_the_report_refers_to_nothing_on_the_network(page):
    parsed = tags_of(page)
    names = [tag for tag, _ in parsed.tags]
    assert "link" not in names and "iframe" not in names and "img" not in names
    for tag, attrs in parsed.tags:
        for name in ("src", "href", "action", "srcset", "data"):
            value = (attrs.get(name) or "").strip().lower()
            assert not value.startswith(("http:", "https:", "//")), (tag, name, value)
        if tag == "script":
            assert "src" not in attrs, attrs  # every script is inline
    style = "".join(parsed.styles)
    assert style and "@import" not in style and "url(" not in style


def test_plotly_js_is_inline_once_and_the_file_stays_reasonable(page):
    from plotly.offline import get_plotlyjs

    assert page.count(get_plotlyjs()) == 1
    assert len(page) < len(get_plotlyjs()) + 500_000


def test_the_verdict_status_and_reason_lead_the_report(page):
    assert '<div class="verdict fail" id="verdict">FAIL</div>' in page
    assert '<b id="status">halted</b>' in page
    assert "p99 &lt; 150 over 3 s, abortOnFail after 2 s failed at 8 s" in page
    assert page.index('id="verdict"') < page.index("<h2>Thresholds</h2>") < page.index('id="charts"')
    assert "checkout-latency <small>v2</small>" in page
    assert "started 2026-12-07T11:59:58+00:00, ended 2026-12-07T12:00:21+00:00" in page


def test_the_thresholds_and_steady_state_tables_show_each_outcome(page):
    thresholds = page[page.index("<h2>Thresholds</h2>"):page.index("<h2>Steady state</h2>")]
    assert ('<td>p99 &lt; 150 over 3 s, abortOnFail after 2 s</td><td class="n">260.5 ms</td>'
            '<td><span class="bad">failed</span></td><td class="n">8 s</td><td>yes</td>') in thresholds
    assert '<td>errorRate &lt; 1</td><td class="n">0.93 %</td><td><span class="ok">ok</span></td>' in thresholds
    steady = page[page.index("<h2>Steady state</h2>"):page.index("<h2>Load, latency")]
    assert '<td class="n">6.2 ms</td>' in steady and "not run: the run was halted" in steady


def test_the_figure_shades_the_fault_and_marks_the_halt_on_one_axis(page):
    figure = json_block(page, "figure")
    shapes = figure["layout"]["shapes"]
    rects = [s for s in shapes if s["type"] == "rect"]
    assert [(s["x0"], s["x1"], s["yref"]) for s in rects] == [(5, 15, "paper")]
    lines = {s["name"]: s["x0"] for s in shapes if s["type"] == "line" and s.get("yref") == "paper"}
    assert lines["halt: halted: p99 &lt; 150 over 3 s"] == 8
    assert lines["threshold: p99 &lt; 150 over 3 s failed"] == 8
    assert lines["stage: stage 2: hold 50 requests/s"] == 5
    assert not any(name.startswith("phase:") for name in lines)  # phases are in the timeline table
    texts = [a["text"] for a in figure["layout"]["annotations"]]
    assert "fault: network-latency 200 ms on checkout" in texts and "halt: halted: p99 &lt; 150 over 3 s" in texts
    # each latency threshold as a horizontal line on the latency row
    hlines = {s["y0"]: s["yref"] for s in shapes if s["type"] == "line" and s.get("xref") == "x2 domain"}
    assert hlines == {100: "y2", 150: "y2"}
    traces = {t["name"]: t for t in figure["data"]}
    assert set(traces) == {"planned", "sent", "dropped", "p50", "p95", "p99", "failed", "error rate %"}
    assert traces["p95"]["x"][0] == 1 and traces["p95"]["y"][5] == 231.0 and traces["planned"]["y"][0] == 18


def test_a_fault_without_an_end_event_shades_to_the_end_of_the_run(run):
    unended = run.model_copy(update={"events": [e for e in run.events if e.kind is not ExperimentEventKind.FAULT_END]})
    assert fault_spans(unended) == [(5, 20, "network-latency 200 ms on checkout")]


def test_faults_pair_by_step_and_overlapping_ones_keep_their_own_ends(run):
    def event(at, kind, step):
        return ExperimentEventOut(at="t", atS=at, kind=kind, title=f"fault {step}", detail={"step": step})

    start, end = ExperimentEventKind.FAULT_START, ExperimentEventKind.FAULT_END
    crossed = run.model_copy(update={"events": [event(2, start, 0), event(4, start, 1), event(6, end, 1),
                                                event(9, end, 0)]})
    assert fault_spans(crossed) == [(2, 9, "fault 0"), (4, 6, "fault 1")]


def test_the_timeline_lists_every_event_in_order(page, run):
    timeline = page[page.index("<h2>Timeline</h2>"):page.index("<h2>Document</h2>")]
    rows = re.findall(r"<tr><td>[^<]*</td><td class=\"n\">([^<]*)</td><td>([^<]*)</td>", timeline)
    assert [kind for _, kind in rows] == [e.kind.value for e in run.events]
    assert rows[0] == ("-2 s", "phase") and '{&quot;step&quot;: 0}' in timeline


def test_hostile_strings_are_escaped_everywhere():
    hostile = halted_run(hostile=True)
    page = render_html(hostile, other=passed_run())
    assert HOSTILE not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 4  # name, reason, probe detail, timeline, document
    assert [tag for tag, attrs in tags_of(page).tags if tag == "script"] == ["script"] * 4  # plotly, 2 JSON, newPlot
    assert json_block(page, "run")["document"]["description"].endswith(HOSTILE)


def test_the_embedded_run_parses_back_to_the_same_model(page, run):
    assert ExperimentRunDetailOut.model_validate(json_block(page, "run")) == run


def test_the_comparison_section_appears_only_with_another_run(page, run):
    assert 'id="comparison"' not in page
    both = render_html(run, other=passed_run())
    section = both[both.index('id="comparison"'):both.index("<h2>Document</h2>")]
    assert "<li>a: run 6, pass, started" in section and "<li>b: run 7, fail, started" in section
    assert ('<td>p95 &lt; 100</td><td class="n">8.1 ms</td><td><span class="ok">ok</span></td>'
            '<td class="n">229.4 ms</td><td><span class="bad">failed</span></td><td class="n">221.3 ms</td>') in section
    assert '<td class="n"><span class="na">n/a</span></td></tr>' in section  # errorRate: a has no figure


def result(expression, figure, ok=True, index=0):
    return ThresholdResultOut(index=index, expression=expression, metric=ThresholdMetric.P95, ok=ok, figure=figure,
                              failedAtS=None, aborted=False)


def with_thresholds(run_id, thresholds) -> ExperimentRunOut:
    base = halted_run(run_id)
    return ExperimentRunOut.model_validate({**base.model_dump(include=set(ExperimentRunOut.model_fields)),
                                            "thresholds": thresholds})


COMPARISONS = [
    ("same-expression", [result("p95 < 100", 80.0)], [result("p95 < 100", 95.5, ok=True)],
     [("p95 < 100", 80.0, 95.5, 15.5)]),
    ("only-in-a", [result("p95 < 100", 80.0), result("p99 < 200", 120.0)], [result("p95 < 100", 70.0)],
     [("p95 < 100", 80.0, 70.0, -10.0), ("p99 < 200", 120.0, None, None)]),
    ("only-in-b", [result("p95 < 100", 80.0)], [result("max < 900", 500.0), result("p95 < 100", 80.0)],
     [("p95 < 100", 80.0, 80.0, 0.0), ("max < 900", None, 500.0, None)]),
    ("unmeasured", [result("p95 < 100", None, ok=None)], [result("p95 < 100", 60.0)],
     [("p95 < 100", None, 60.0, None)]),
    ("twice-in-one", [result("p95 < 100", 1.0), result("p95 < 100", 2.0)], [result("p95 < 100", 5.0)],
     [("p95 < 100", 1.0, 5.0, 4.0), ("p95 < 100", 2.0, None, None)]),
    ("none", [], [], []),
]


@pytest.mark.parametrize(("a", "b", "want"), [c[1:] for c in COMPARISONS], ids=[c[0] for c in COMPARISONS])
def test_compare_matches_thresholds_by_expression(a, b, want):
    got = compare(with_thresholds(1, a), with_thresholds(2, b))
    assert (got.a.id, got.b.id) == (1, 2)
    assert [(row.expression, row.a.figure if row.a else None, row.b.figure if row.b else None, row.change)
            for row in got.thresholds] == [(e, fa, fb, pytest.approx(c) if c is not None else None)
                                           for e, fa, fb, c in want]


def test_compare_of_detailed_runs_carries_their_summaries_only():
    got = compare(passed_run(), halted_run())
    assert type(got.a) is ExperimentRunOut and type(got.b) is ExperimentRunOut
    assert "seconds" not in got.model_dump()["a"]
    assert [row.change for row in got.thresholds] == [pytest.approx(221.3), pytest.approx(248.5), None]
