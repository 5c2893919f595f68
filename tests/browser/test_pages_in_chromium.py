"""Every dashboard page in headless Chromium against the running app: fully rendered, no exception or error box,
a screenshot each (outside git), the render times printed; Overview within 1 s and Metrics within 2 s with a week
of metrics for 20 services when BROWSER_ASSERT_SPEED=1 (BROWSER_SPEED_ROWS=10080000 seeds 10 million rows). Then
each page opened while the database (and then the API) is cut off says so without a traceback and comes back by
itself once it returns. Then the public status page at /status, drawn with scripts off. Last, the API's Swagger
UI at /api/docs renders every operation with no request leaving the loopback. With SCREENSHOT_DOCS=1 the
Overview's screenshot is saved as docs/screenshot-overview.png."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.browser.cdp import Chromium
from tests.browser.conftest import RunningApp
from tests.browser.dashboard import Dashboard, Link, PageReport, Visit
from tests.browser.relay import Relay

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]  # the 10-million-row seed alone takes minutes

ROOT = Path(__file__).resolve().parents[2]
OVERVIEW_GOAL_S = 1.0
METRICS_GOAL_S = 2.0
REPEATS = 3
WEEK_RANGE = "7 d"  # the Metrics page's range button for a week
DOCS_SCREENSHOT = ROOT / "docs" / "screenshot-overview.png"


@pytest.fixture(scope="module")
def sweep(dashboard: Dashboard, shots_dir: Path) -> list[Visit]:
    """Each page of the sidebar once, in its order, ending on the page shown after logging in; a screenshot each."""
    links = dashboard.links()
    assert links, "the sidebar offers no pages after logging in"
    visits = []
    for number, link in enumerate([*links[1:], links[0]], start=1):
        visit = dashboard.go(link)  # a page that fails is recorded, and the others are visited still
        suffix = "-FAILED" if visit.problems() else ""
        shot = dashboard.screenshot(shots_dir / f"{number:02d}-{link.slug}{suffix}.png", visit.report)
        visits.append(replace(visit, screenshot=shot))
    if os.environ.get("SCREENSHOT_DOCS") == "1" and links[0].label == "Overview" and not visits[-1].problems():
        dashboard.browser.screenshot(DOCS_SCREENSHOT)  # the window as a user sees it first, for the README
    return visits


def _fmt(v: Visit) -> str:
    script = "-" if v.script_seconds is None else f"{v.script_seconds:.2f}"
    return f"{v.seconds:.2f} (script {script})" + (f" NOT RENDERED: {v.unfinished}" if v.unfinished else "")


def _table(visits: list[Visit], login_s: float | None, shots: Path) -> str:
    first = "did not finish rendering" if login_s is None else f"rendered in {login_s:.2f} s"
    lines = [f"dashboard pages in Chromium, screenshots in {shots}; after logging in the first page {first} "
             "(a fresh dashboard process)",
             f"{'page':<16} {'rendered':>9} {'script':>7}  {'metrics':>7} {'charts':>6} {'tables':>6}  notes"]
    for v in visits:
        r = v.report
        script = "-" if v.script_seconds is None else f"{v.script_seconds:.2f}s"
        notes = [*(f"NOT RENDERED: {v.unfinished}" for _ in [v.unfinished] if v.unfinished),
                 *(["clicked while the page before was still running"] if v.after_busy else []),
                 *(f"EXCEPTION: {e[:100]}" for e in r.exceptions), *(f"ERROR: {e[:100]}" for e in r.errors),
                 *(f"warning: {w[:80]}" for w in r.warnings), *(f"info: {i[:80]}" for i in r.infos)]
        lines.append(f"{v.link.label:<16} {v.seconds:>8.2f}s {script:>7}  {r.metrics:>7} {r.charts:>6} {r.tables:>6}  "
                     + " | ".join(notes))
    return "\n".join(lines)


def test_every_page_renders_without_an_exception(sweep: list[Visit], dashboard: Dashboard, shots_dir: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print("\n" + _table(sweep, dashboard.login_seconds, shots_dir))
    problems = {v.link.label: v.problems() for v in sweep if v.problems()}
    assert not problems, f"pages fail (screenshots in {shots_dir}): {problems}"
    for v in sweep:
        assert v.report.title, f"{v.link.label} shows no title (screenshot {v.screenshot})"
        assert v.report.metrics + v.report.charts + v.report.tables > 0, (
            f"{v.link.label} shows no figure, chart or table: {v.report} (screenshot {v.screenshot})")
    # every page file is in the navigation (the default page at the site's root, the others by file name)
    files = {p.stem for p in (ROOT / "pages").glob("*.py") if not p.name.startswith("_")}
    paths = {v.link.href.rstrip("/").rsplit("/", 1)[-1] for v in sweep if v.link.href != dashboard.base_url}
    assert paths <= files and len(sweep) == len(files), (
        f"the sidebar's pages {sorted(v.link.label for v in sweep)} are not the page files {sorted(files)}")


def test_the_experiments_page_shows_the_editor_and_a_finished_runs_verdict(sweep: list[Visit],
                                                                          dashboard: Dashboard) -> None:
    # the app under test ran one short experiment (tests/browser/conftest.py): the page opens on it
    visit = next((v for v in sweep if v.link.label == "Experiments"), None)
    assert visit is not None, "no Experiments page in the sidebar"
    again = dashboard.go(visit.link)
    text = dashboard.browser.evaluate("document.querySelector('[data-testid=\"stMainBlockContainer\"]').innerText")
    assert not again.problems(), again.problems()
    assert "Document (JSON)" in text and "Thresholds" in text, text[:2000]
    assert "✅ pass run #1 completed" in text or "❌ fail run #1 completed" in text, (
        f"no verdict of the finished run on the Experiments page: {text[:3000]}")


def _visits(dashboard: Dashboard, first: Visit, away: Link) -> list[Visit]:
    """first, then more navigations from `away` to the same page while they render (one that does not is enough)."""
    visits = [first]
    while len(visits) < REPEATS and not visits[-1].unfinished:
        dashboard.go(away)
        visits.append(dashboard.go(first.link))
    return visits


def _median(visits: list[Visit]) -> float | None:
    return None if not visits or any(v.unfinished for v in visits) else statistics.median(v.seconds for v in visits)


def _s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f} s"


def test_overview_and_metrics_render_within_the_goal(sweep: list[Visit], dashboard: Dashboard,
                                                     running_app: RunningApp, shots_dir: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    by_label = {v.link.label: v for v in sweep}
    assert "Overview" in by_label, f"no Overview page in the sidebar: {sorted(by_label)}"
    # between two measured visits the browser goes to the quickest other page, so each visit is a real navigation
    away = min((v for v in sweep if v.link.label not in ("Overview", "Metrics")), key=lambda v: v.seconds).link
    # the sweep's visits count too: Overview's came from another page on a warm dashboard; Metrics' was its first
    # (its modules imported by this process, nothing cached); more visits give a median that one busy moment of
    # this 2-core machine cannot move. Switching Metrics to a week then reads a week for the first time.
    overview = _visits(dashboard, by_label["Overview"], away)
    metrics = _visits(dashboard, by_label["Metrics"], away) if "Metrics" in by_label else []
    week = None
    if metrics and not metrics[-1].unfinished:  # on the Metrics page now: its week, read for the first time
        week = dashboard.press(metrics[0].link, WEEK_RANGE)
        dashboard.screenshot(shots_dir / f"metrics-{'-'.join(WEEK_RANGE.split())}.png", week.report)
    overview_s, metrics_s = _median(overview), _median(metrics)
    week_s = None if week is None or week.unfinished else week.seconds
    seeded = running_app.seeded
    with capsys.disabled():
        print(f"\nseeded {seeded.rows:,d} metric rows ({seeded.services} services x {seeded.days:g} days) "
              f"in {seeded.seconds:.1f} s")
        print(f"Overview rendered in {_s(overview_s)} (goal <= {OVERVIEW_GOAL_S:g} s), Metrics ({seeded.services} "
              f"services, {seeded.days:g} days) in {_s(week_s)} (goal <= {METRICS_GOAL_S:g} s)")
        print(f"  Overview, {len(overview)} visits: {', '.join(map(_fmt, overview))}; median {_s(overview_s)}")
        if metrics:
            print(f"  Metrics at its default range, {len(metrics)} visits (the first: modules imported, nothing "
                  f"cached): {', '.join(map(_fmt, metrics))}; median {_s(metrics_s)}")
        if week is not None:
            print(f"  Metrics switched to '{WEEK_RANGE}' (nothing cached): {_fmt(week)}")
    # both pages must finish rendering, always; the time goals are asserted only when asked (BROWSER_ASSERT_SPEED=1,
    # with BROWSER_SPEED_ROWS=10080000 on a quiet machine): a shared 2-core CI machine is too noisy for timed tests,
    # so there the figures are printed, not judged
    assert overview_s is not None and (metrics_s is not None or not metrics), "a measured page never finished rendering"
    if os.environ.get("BROWSER_ASSERT_SPEED") != "1":
        return
    assert overview_s <= OVERVIEW_GOAL_S, (
        f"Overview is not rendered within {OVERVIEW_GOAL_S:g} s: {', '.join(map(_fmt, overview))}")
    assert metrics, (f"no Metrics page in the sidebar ({sorted(by_label)}): the goal, Metrics rendered "
                     f"within {METRICS_GOAL_S:g} s with a week of 20 services, cannot be measured")
    assert metrics_s is not None and metrics_s <= METRICS_GOAL_S, (
        f"Metrics is not rendered within {METRICS_GOAL_S:g} s: {', '.join(map(_fmt, metrics))}")
    assert week is not None and not week.problems() and week.seconds <= METRICS_GOAL_S, (
        f"Metrics showing '{WEEK_RANGE}' is not rendered within {METRICS_GOAL_S:g} s: "
        + (_fmt(week) + f" {week.problems()}" if week else "-"))


SAID_WITHIN_S = 10.0  # the outage banner's probe refreshes every 5 s; a page reading the database says it at once
RECOVERED_WITHIN_S = 30.0  # a page's retry comes every 5 s; the engine's pool reconnects on its next use


def _says_the_database_is_gone(r: PageReport) -> bool:
    return any("database" in e.lower() for e in r.errors)


def _says_the_api_is_gone(r: PageReport) -> bool:
    return any("api" in e.lower() and ("unreachable" in e.lower() or "not reachable" in e.lower())
               for e in [*r.errors, *r.warnings])


def _back(r: PageReport) -> bool:
    return (not r.errors and not r.exceptions and r.metrics + r.charts + r.tables > 0
            and not _says_the_api_is_gone(r))


def _cut_on_each_page(sweep: list[Visit], dashboard: Dashboard, link: Relay, says: Callable[[PageReport], bool],
                      what: str, shots: Path) -> tuple[list[str], dict[str, list[str]]]:
    """Per page: cut `link`, open the page, wait until it `says` so, restore, wait until it is back by itself.
    A line per page for the log, and what went wrong per page."""
    problems: dict[str, list[str]] = {}
    lines = []
    for number, page in enumerate(sweep, start=1):
        link.cut()
        try:
            visit = dashboard.go(page.link)
            said_s, said = dashboard.watch(says, SAID_WITHIN_S)
            dashboard.screenshot(shots / f"{what}-cut-{number:02d}-{page.link.slug}.png", said)
        finally:
            link.restore()
        back_s, back = dashboard.watch(_back, RECOVERED_WITHIN_S)
        found = [f"not rendered: {visit.unfinished}" for _ in [visit.unfinished] if visit.unfinished]
        found += [f"exception box: {e[:300]}" for e in said.exceptions]
        if said_s is None:
            found.append(f"did not say the {what} is gone within {SAID_WITHIN_S:g} s; errors {said.errors}, "
                         f"warnings {said.warnings}")
        if back_s is None:
            found.append(f"not back within {RECOVERED_WITHIN_S:g} s of the {what}'s return: errors "
                         f"{back.errors}, warnings {back.warnings}, exceptions {back.exceptions}")
        if found:
            problems[page.link.label] = found
        first = ([*said.errors, *said.warnings] or ["-"])[0].splitlines()[0][:90]
        lines.append(f"{page.link.label:<16} said in {_s(said_s):>7}, back in {_s(back_s):>7}  {first}")
    return lines, problems


@pytest.mark.parametrize("what", ["database", "api"])
def test_each_page_says_what_is_gone_and_comes_back_by_itself(
        what: str, sweep: list[Visit], dashboard: Dashboard, running_app: RunningApp, shots_dir: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    link, says = ((running_app.database, _says_the_database_is_gone) if what == "database"
                  else (running_app.api_link, _says_the_api_is_gone))
    lines, problems = _cut_on_each_page(sweep, dashboard, link, says, what, shots_dir)
    with capsys.disabled():
        print(f"\n{what} cut off on each page, then restored (no reload):\n" + "\n".join(lines))
    assert not problems, f"pages fail the {what} outage (screenshots {what}-cut-* in {shots_dir}): {problems}"


def test_the_status_page_renders_without_a_script(chromium: Chromium, running_app: RunningApp, shots_dir: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    # after the dashboard's tests: it takes the browser's page away from the dashboard
    services = [s["name"] for s in running_app.api.get("/api/services").json()]
    chromium.call("Emulation.setScriptExecutionDisabled", value=True)  # drawn with the page's scripts off
    try:
        chromium.navigate(f"{running_app.api.base_url}/status")
        shown = chromium.evaluate("Array.from(document.querySelectorAll('[data-service]'))"
                                  ".map(e => [e.dataset.service, e.querySelectorAll('.bar').length])")
        scripts = chromium.evaluate("document.scripts.length")
        title = chromium.evaluate("document.querySelector('h1').innerText")
        banner = chromium.evaluate("document.querySelector('.banner').innerText")
        shot = chromium.screenshot(shots_dir / "status-page.png")
    finally:
        chromium.call("Emulation.setScriptExecutionDisabled", value=False)
    with capsys.disabled():
        print(f"\n/status: {len(shown)} services, banner '{banner}', screenshot {shot}")
    assert title == "Browser test status"
    assert scripts == 0
    assert sorted(name for name, _ in shown) == sorted(services)
    assert {bars for _, bars in shown} == {90}


HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
DOCS_RENDER_TIMEOUT_S = 30.0
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def test_api_docs_render_every_operation_without_leaving_the_loopback(
        chromium: Chromium, running_app: RunningApp, shots_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # last in this module: it takes the browser's page away from the dashboard
    document = running_app.api.get("/api/openapi.json").json()
    operations = sum(1 for item in document["paths"].values() for method in item if method in HTTP_METHODS)
    with chromium.recording_requests() as requests:
        chromium.navigate(f"{running_app.api.base_url}/api/docs")
        deadline = time.monotonic() + DOCS_RENDER_TIMEOUT_S
        shown = 0
        while time.monotonic() < deadline:
            shown = chromium.evaluate("document.querySelectorAll('.swagger-ui .opblock').length")
            if shown >= operations:
                break
            time.sleep(0.1)
        title = chromium.evaluate("(document.querySelector('.swagger-ui .info .title') || {innerText: ''}).innerText")
        errors = chromium.evaluate("Array.from(document.querySelectorAll('.swagger-ui .errors-wrapper'))"
                                   ".map(e => e.innerText)")
    shot = chromium.screenshot(shots_dir / "api-docs.png")
    away = sorted({u for u in requests if not u.startswith("data:") and urlsplit(u).hostname not in LOOPBACK})
    with capsys.disabled():
        print(f"\n/api/docs: {shown} of {operations} operations rendered, {len(requests)} requests sent, "
              f"{len(away)} beyond the loopback; screenshot {shot}")
    assert not away, f"the Swagger UI sent requests beyond the loopback: {away}"
    assert any(urlsplit(u).path == "/api/openapi.json" for u in requests), f"the document was not fetched: {requests}"
    assert not errors, f"the Swagger UI reports errors: {errors}"
    assert document["info"]["title"] in title, f"the Swagger UI shows no title (screenshot {shot})"
    assert shown == operations, f"the Swagger UI shows {shown} operations, the document has {operations} ({shot})"
