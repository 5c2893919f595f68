"""The Streamlit dashboard as a user's browser sees it: log in through the form, follow the sidebar's links, wait
until a page is fully rendered (timed in the page itself), read what it shows, take a screenshot."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.browser.cdp import CdpError, Chromium

__all__ = ["Dashboard", "Link", "PageReport", "Visit"]

RENDER_TIMEOUT_S = 30.0
SETTLE_MS = 250  # "rendered" must hold this long (a flicker between two runs is not the end)
MAX_SHOT_HEIGHT = 8000

# Installed once per document. Streamlit's root element carries the script run state
# (data-test-script-state: running / notRunning / ...) and the connection state, as its own e2e tests read them;
# elements of the previous run are data-stale="true" until the new run replaces them; lazily loaded elements show
# a skeleton until their code arrives; a plotly chart has drawn once its .main-svg exists.
_INSTALL = r"""
(() => {
  if (window.__mm) return true;
  const app = () => document.querySelector('[data-testid="stApp"]');
  const state = {runs: 0, ranAt: null, doneAt: null};
  new MutationObserver(() => {
    const s = app() && app().getAttribute('data-test-script-state');
    if (s === 'running') { state.runs += 1; state.ranAt = performance.now(); }
    else if (s === 'notRunning') state.doneAt = performance.now();
  }).observe(document.body, {subtree: true, attributes: true, attributeFilter: ['data-test-script-state']});
  // an element's text without the names of its material icons (drawn from a font, so they are text)
  const textOf = e => {
    const copy = e.cloneNode(true);
    copy.querySelectorAll('[translate="no"][aria-hidden="true"]').forEach(icon => icon.remove());
    return copy.textContent.replace(/\s+/g, ' ').trim();
  };
  const texts = (root, selector) => Array.from(root.querySelectorAll(selector)).map(textOf);
  const rendered = () => {
    const a = app();
    if (!a || a.getAttribute('data-test-script-state') !== 'notRunning') return 'script running';
    if (a.getAttribute('data-test-connection-state') !== 'CONNECTED') return 'not connected';
    if (document.querySelector('[data-testid="stSkeleton"], [data-testid="stSkeletonElement"]')) return 'skeleton';
    if (document.querySelector('[data-stale="true"]')) return 'stale elements';
    const main = document.querySelector('[data-testid="stMainBlockContainer"]');
    if (!main || !main.querySelector('h1')) return 'no title in the main block';
    for (const chart of main.querySelectorAll('[data-testid="stPlotlyChart"]'))
      if (!chart.querySelector('.main-svg')) return 'chart not drawn';
    return null;
  };
  const links = () => Array.from(document.querySelectorAll('[data-testid="stSidebarNavLink"]'));
  // do act(), then wait until a script run started after it has ended and the page is fully rendered (pending()
  // says what else must hold) for settleMs: the ms from act() to the first moment of that, and to the run's end
  const until = (act, pending, timeoutMs, settleMs) => {
    const runsBefore = state.runs;
    const busy = app().getAttribute('data-test-script-state') !== 'notRunning';  // the page left was still running
    const t0 = performance.now();
    act();
    return new Promise(resolve => {
      let first = null;
      const tick = () => {
        const now = performance.now();
        const why = state.runs === runsBefore ? 'no script run started' : pending() || rendered();
        if (why === null) {
          if (first === null) first = now;
          if (now - first >= settleMs)
            return resolve({ms: first - t0, scriptMs: state.doneAt - t0, why: null, busy});
        } else first = null;
        if (now - t0 > timeoutMs) return resolve({ms: now - t0, scriptMs: null, why, busy});
        setTimeout(tick, 5);
      };
      tick();
    });
  };
  window.__mm = {
    state, rendered,
    links: () => links().map(l => ({label: (l.querySelector('span[label]') || l).getAttribute('label')
                                            || l.innerText.trim(), href: l.href})),
    // click the sidebar link to href; resolve with the ms from the click to the first moment the new page was
    // fully rendered (and stayed so for settleMs), or with why not after timeoutMs
    go(href, timeoutMs, settleMs) {
      const link = links().find(l => l.href === href);
      if (!link) return Promise.resolve({ms: 0, scriptMs: null, why: 'no sidebar link to ' + href, busy: false});
      // the path only: a page may keep its settings in the query string (Metrics: the range)
      const path = u => new URL(u).pathname;
      return until(() => link.click(), () => path(location.href) !== path(href) ? 'address not changed'
        : !link.isConnected || link.getAttribute('aria-current') !== 'page' ? 'link not current' : null,
        timeoutMs, settleMs);
    },
    // the same for a button of the page, found by its text
    press(label, timeoutMs, settleMs) {
      const main = document.querySelector('[data-testid="stMainBlockContainer"]');
      const button = main && Array.from(main.querySelectorAll('button')).find(b => textOf(b) === label);
      if (!button)
        return Promise.resolve({ms: 0, scriptMs: null, why: 'no button "' + label + '" on the page', busy: false});
      return until(() => button.click(), () => null, timeoutMs, settleMs);
    },
    report() {
      const main = document.querySelector('[data-testid="stMainBlockContainer"]');
      const side = document.querySelector('[data-testid="stSidebarContent"]');
      const scroller = document.querySelector('[data-testid="stMain"]');
      return {
        title: (main.querySelector('h1') || {innerText: ''}).innerText.trim(),
        exceptions: texts(document, '[data-testid="stException"]'),
        errors: texts(document, '[data-testid="stAlertContentError"]'),
        warnings: texts(document, '[data-testid="stAlertContentWarning"]'),
        infos: texts(main, '[data-testid="stAlertContentInfo"]'),
        charts: main.querySelectorAll('[data-testid="stPlotlyChart"]').length,
        tables: main.querySelectorAll('[data-testid="stDataFrame"], [data-testid="stTable"]').length,
        metrics: main.querySelectorAll('[data-testid="stMetric"]').length,
        // a shown number or time axis without a title: a figure without its unit
        untitled_axes: Array.from(main.querySelectorAll('.js-plotly-plot')).flatMap(plot => {
          // what is drawn from the full layout; titles from the figure's own, since the full one fills an empty
          // title with a "Click to enter ... title" placeholder
          const full = plot._fullLayout || {}, own = plot.layout || {};
          const text = t => (typeof t === 'string' ? t : (t && t.text) || '').replace(/<[^>]+>/g, '').trim();
          const chart = text(own.title) || 'a chart without a title';
          // names (categories) need no unit, nor an axis drawn without numbers (the upper one of a shared pair)
          const numbers = a => a.visible && a.showticklabels && !['category', 'multicategory'].includes(a.type);
          return Object.keys(full).filter(k => /^[xy]axis\d*$/.test(k))
            .filter(k => numbers(full[k]) && !text((own[k] || {}).title)).map(k => chart + ': ' + k);
        }),
        height: Math.max(scroller ? scroller.scrollHeight : 0, side ? side.scrollHeight : 0, innerHeight),
      };
    },
  };
  return true;
})()
"""


@dataclass(frozen=True)
class Link:
    """One page in the sidebar's navigation."""

    label: str
    href: str

    @property
    def slug(self) -> str:
        """A file name for the page: its label in lower case, words joined by dashes."""
        return "-".join(self.label.lower().split())


@dataclass(frozen=True)
class PageReport:
    """What a rendered page shows: its title, the boxes Streamlit draws for failures, and how much data."""

    title: str
    exceptions: list[str]
    errors: list[str]
    warnings: list[str]
    infos: list[str]
    charts: int
    tables: int
    metrics: int
    untitled_axes: list[str]
    height: int

    def problems(self) -> list[str]:
        """The exception boxes, error boxes and number axes without a title (a unit), as lines for an assertion."""
        return ([f"exception box: {text}" for text in self.exceptions] + [f"error box: {text}" for text in self.errors]
                + [f"axis without a title (its unit): {axis}" for axis in self.untitled_axes])


@dataclass(frozen=True)
class Visit:
    """One navigation to a page: how long until it was fully rendered, and what it showed.

    `seconds` runs from the click on the sidebar link to the first moment the page was fully rendered (or to the
    end of the wait, when `unfinished` says what was still going on); `script_seconds` to the end of the page's
    script run (the server's share, with the messages' way to the browser), so `seconds - script_seconds` is what
    the browser did after (drawing charts, mostly).
    """

    link: Link
    seconds: float
    script_seconds: float | None
    report: PageReport
    unfinished: str | None = None
    after_busy: bool = False  # the page before was still running when the link was clicked (its time counts here)
    screenshot: Path | None = None

    def problems(self) -> list[str]:
        """Not rendered in time, exception boxes, error boxes."""
        late = [f"not fully rendered after {self.seconds:.1f} s ({self.unfinished})"] if self.unfinished else []
        return late + self.report.problems()


class Dashboard:
    """The dashboard in one Chromium page."""

    def __init__(self, browser: Chromium, base_url: str) -> None:
        self.browser = browser
        self.base_url = base_url.rstrip("/") + "/"
        self.login_seconds: float | None = None  # from submitting the login form to the first page rendered

    def _install(self) -> None:
        self.browser.evaluate(_INSTALL)

    def _wait(self, expression: str, what: str, timeout: float = RENDER_TIMEOUT_S) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = self.browser.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} within {timeout:g} s")
            time.sleep(0.05)

    def log_in(self, username: str, password: str) -> float | None:
        """Open the dashboard, type into the login form and submit it; the seconds until the first page rendered
        (None when it did not within the bound; an AssertionError when the login is not accepted)."""
        self.browser.navigate(self.base_url)
        self._wait("document.querySelectorAll('input[aria-label=\"Password\"]').length", "the login form showed")
        self._install()
        for label, value in (("Username", username), ("Password", password)):
            self.browser.evaluate(f"document.querySelector('input[aria-label=\"{label}\"]').focus()")
            self.browser.insert_text(value)
        began = time.monotonic()
        self.browser.evaluate("document.querySelector('[data-testid=\"stBaseButton-primaryFormSubmit\"]').click()")
        self._wait("document.querySelectorAll('[data-testid=\"stSidebarNavLink\"]').length",
                   "the login was accepted (the sidebar offers pages)")
        try:
            self._wait("window.__mm.rendered() === null", "the first page rendered")
        except AssertionError:
            return None  # the page's own visit says what it does
        self.login_seconds = time.monotonic() - began
        return self.login_seconds

    def links(self) -> list[Link]:
        """The pages the sidebar offers, in its order."""
        self._install()
        return [Link(item["label"], item["href"]) for item in self.browser.evaluate("window.__mm.links()")]

    def report(self) -> PageReport:
        """What the current page shows."""
        self._install()
        return PageReport(**self.browser.evaluate("window.__mm.report()"))

    def watch(self, holds: Callable[[PageReport], bool], timeout: float) -> tuple[float | None, PageReport]:
        """Watch the current page, without touching it, until it is fully rendered and `holds` of what it shows:
        the seconds that took (None if it did not within timeout) and the last report."""
        began = time.monotonic()
        while True:
            report = self.report()
            if self.browser.evaluate("window.__mm.rendered() === null") and holds(report):
                return time.monotonic() - began, report
            if time.monotonic() - began > timeout:
                return None, report
            time.sleep(0.2)

    def go(self, link: Link, timeout: float = RENDER_TIMEOUT_S) -> Visit:
        """Click link in the sidebar and wait (at most timeout s) until its page is fully rendered."""
        return self._visit(link, f"window.__mm.go({json.dumps(link.href)}", timeout)

    def press(self, page: Link, label: str, timeout: float = RENDER_TIMEOUT_S) -> Visit:
        """Click the button labelled `label` on the current page (page's) and wait until it is rendered again."""
        return self._visit(Link(f"{page.label} · {label}", page.href), f"window.__mm.press({json.dumps(label)}",
                           timeout)

    def _visit(self, link: Link, call: str, timeout: float) -> Visit:
        self._install()
        try:
            answer = self.browser.evaluate(f"{call}, {timeout * 1000:.0f}, {SETTLE_MS})", timeout=timeout + 10)
        except CdpError as exc:
            raise AssertionError(f"{link.label}: the browser failed while waiting for the page: {exc}") from exc
        script_ms = answer["scriptMs"]
        return Visit(link, answer["ms"] / 1000, None if script_ms is None else script_ms / 1000, self.report(),
                     unfinished=answer["why"], after_busy=answer["busy"])

    def screenshot(self, path: Path, report: PageReport) -> Path:
        """A PNG of the whole page (the viewport made as tall as the page for the shot)."""
        return self.browser.screenshot(path, height=min(report.height, MAX_SHOT_HEIGHT))
