"""GET /status: the public status page, plain HTML rendered here (no JavaScript, no login), off unless
STATUS_PAGE_ENABLED is true.

It is a page for people, not an operation of the API: a plain route of this blueprint, outside the OpenAPI document
(as the Swagger UI's pages are). Every value drawn is HTML-escaped. One page is built at most every
CACHE_SECONDS per engine from three queries, and browsers and proxies may keep it as long (Cache-Control); while the
database is away the last page built is served, saying when it was built.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

from flask import Response, current_app
from flask.blueprints import BlueprintSetupState
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import NotFound

from db.history import grace_for
from db.status_page import OpenIncident, ServiceStatus, StatusPageData, status_page_data
from engine.api.context import runtime
from engine.api.routing import ApiBlueprint

__all__ = ["CACHE_SECONDS", "STATUS_PATH", "api", "render", "status_page"]

STATUS_PATH = "/status"
CACHE_SECONDS = 30
REFRESH_SECONDS = 60  # the page reloads itself (a meta refresh: no script)
_CACHE_KEY = "status_page"

# the dashboard's palette: green / amber / red mean healthy / degraded / unhealthy, grey unknown
_STATES = {
    "healthy": ("Operational", "ok"),
    "degraded": ("Degraded performance", "warn"),
    "unhealthy": ("Outage", "down"),
}
_UNKNOWN = ("Unknown", "none")
# a day's bar: at least this uptime % is green, at least the second amber, below red; no check grey
GOOD_DAY, FAIR_DAY = 99.9, 95.0

CSS = """
body { margin: 0; background: #f6f7f9; color: #1f2330; font: 15px/1.5 system-ui, -apple-system, "Segoe UI",
  Roboto, sans-serif; }
main { max-width: 58rem; margin: 0 auto; padding: 2rem 1rem 3rem; }
h1 { font-size: 1.8rem; margin: 0 0 1.25rem; }
h2 { font-size: 1.15rem; margin: 2rem 0 0.75rem; }
.banner { padding: 0.9rem 1.1rem; border-radius: 0.5rem; color: #fff; font-weight: 600; font-size: 1.1rem; }
.banner.ok { background: #21c354; } .banner.warn { background: #e8900c; } .banner.down { background: #ff4b4b; }
.banner.none { background: #8b90a0; }
.card { background: #fff; border: 1px solid #e1e4ea; border-radius: 0.5rem; padding: 0.9rem 1.1rem;
  margin-bottom: 0.75rem; }
.row { display: flex; justify-content: space-between; align-items: baseline; gap: 1rem; }
.name { font-weight: 600; overflow-wrap: anywhere; }
.state { font-weight: 600; white-space: nowrap; }
.state.ok { color: #15803d; } .state.warn { color: #b45309; } .state.down { color: #dc2626; }
.state.none { color: #6b7280; }
.bars { display: flex; gap: 2px; height: 2.1rem; margin: 0.6rem 0 0.3rem; }
.bar { flex: 1; border-radius: 2px; background: #d5d8df; }
.bar.ok { background: #21c354; } .bar.warn { background: #ffa421; } .bar.down { background: #ff4b4b; }
.axis { display: flex; justify-content: space-between; font-size: 0.8rem; color: #6b7280; }
.incident { border-left: 5px solid #ff4b4b; }
.incident.acknowledged { border-left-color: #ffa421; }
.incident h3 { font-size: 1rem; margin: 0 0 0.25rem; }
.meta { font-size: 0.85rem; color: #6b7280; margin: 0.2rem 0; }
.note { margin: 0.5rem 0 0.2rem; white-space: pre-wrap; overflow-wrap: anywhere; }
footer { margin-top: 2rem; font-size: 0.8rem; color: #6b7280; }
"""

api = ApiBlueprint("status_page", tag="status-page")


def _time(t: datetime) -> str:
    return f"{t:%Y-%m-%d %H:%M} UTC"


def _state(status: str) -> tuple[str, str]:
    return _STATES.get(status, _UNKNOWN)


def _banner(services: tuple[ServiceStatus, ...]) -> tuple[str, str]:
    """The one-line summary over every service shown, and its tint."""
    states = {s.status for s in services}
    if not services:
        return "No services to show", "none"
    if "unhealthy" in states:
        return "Some services are down", "down"
    if "degraded" in states:
        return "Some services are degraded", "warn"
    if states == {"healthy"}:
        return "All services operational", "ok"
    return "The state of some services is not known", "none"


def _day_class(uptime: float | None) -> str:
    if uptime is None:
        return "none"
    return "ok" if uptime >= GOOD_DAY else "warn" if uptime >= FAIR_DAY else "down"


def _pct(value: float) -> str:
    """An uptime % cut (not rounded) to two decimals, so 99.999 never reads 100.00 (as the dashboard shows it)."""
    return f"{math.floor(value * 100) / 100:.2f}"


def _bars(s: ServiceStatus, data: StatusPageData) -> str:
    cells = []
    for i, uptime in enumerate(s.days):
        day = data.first_day + timedelta(days=i)
        label = f"{day:%Y-%m-%d}: " + ("no data" if uptime is None else f"{_pct(uptime)} % uptime")
        cells.append(f'<span class="bar {_day_class(uptime)}" title="{escape(label)}"></span>')
    return "".join(cells)


def _service(s: ServiceStatus, data: StatusPageData) -> str:
    label, tint = _state(s.status)
    total = "no data" if s.uptime is None else f"{_pct(s.uptime)} % uptime"
    return (f'<div class="card service" data-service="{escape(s.name)}">'
            f'<div class="row"><span class="name">{escape(s.name)}</span>'
            f'<span class="state {tint}">{escape(label)}</span></div>'
            f'<div class="bars" role="img" aria-label="{escape(f"{s.name}: uptime per day, {len(s.days)} days")}">'
            f"{_bars(s, data)}</div>"
            f'<div class="axis"><span>{len(s.days)} days ago</span><span>{escape(total)}</span><span>Today</span>'
            "</div></div>")


def _incident(i: OpenIncident) -> str:
    acknowledged = i.acknowledged_at is not None
    status = (f"acknowledged {_time(i.acknowledged_at)}" if i.acknowledged_at is not None
              else "investigating")
    note = ""
    if i.note:
        when = f" · {_time(i.note_at)}" if i.note_at is not None else ""
        note = f'<p class="note">{escape(i.note)}</p><p class="meta">Latest update{escape(when)}</p>'
    return (f'<article class="card incident{" acknowledged" if acknowledged else ""}">'
            f"<h3>{escape(i.service)}: {escape(i.title)}</h3>"
            f'<p class="meta">Since {escape(_time(i.started_at))} · {escape(i.severity)} · {escape(status)}</p>'
            f"{note}</article>")


def render(data: StatusPageData, title: str, built_at: datetime, stale: bool = False) -> str:
    """The page: a summary line, the open incidents with their latest note, each service's state and its uptime
    per day. `stale`: the database did not answer, this is the page built at `built_at`."""
    summary, tint = _banner(data.services)
    incidents = "".join(_incident(i) for i in data.incidents)
    services = "".join(_service(s, data) for s in data.services)
    note = (" The monitor's database does not answer at the moment: this is the latest page it could build."
            if stale else "")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{REFRESH_SECONDS}">
<title>{escape(title)}</title>
<style>{CSS}</style>
</head>
<body>
<main>
<h1>{escape(title)}</h1>
<div class="banner {tint}">{escape(summary)}</div>
{f'<h2>Open incidents</h2>{incidents}' if incidents else ''}
<h2>Services</h2>
{services or '<p class="meta">No service is shown here yet.</p>'}
<footer>Updated {escape(_time(built_at))}.{escape(note)} Each bar is one UTC day: the share of the time the monitor
observed the service that it was up (healthy or degraded: at least one instance answered); grey means it was not
observed that day.</footer>
</main>
</body>
</html>
"""


@dataclass
class _Built:
    html: str
    data: StatusPageData
    at: datetime
    mono: float


class _PageCache:
    """The last page built, rebuilt when older than CACHE_SECONDS; one build at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._built: _Built | None = None

    def page(self) -> tuple[str, bool]:
        """The page's HTML, and whether it is fresh (False: the database failed and this is the last one)."""
        rt = runtime()
        with self._lock:
            built = self._built
            if built is not None and rt.clock.monotonic() - built.mono < CACHE_SECONDS:
                return built.html, True
            now = rt.clock.now()
            s = rt.settings
            try:
                with rt.sessions() as session:
                    data = status_page_data(session, s.status_page_services, now, grace_for(s.health_interval))
            except OperationalError:
                if built is None:
                    raise
                return render(built.data, s.status_page_title, built.at, stale=True), False
            self._built = _Built(render(data, s.status_page_title, now), data, now, rt.clock.monotonic())
            return self._built.html, True


def status_page() -> Response:
    """The status page (public); 404 while STATUS_PAGE_ENABLED is false."""
    if not runtime().settings.status_page_enabled:
        raise NotFound()
    cache: _PageCache = current_app.extensions[_CACHE_KEY]
    html, fresh = cache.page()
    response = Response(html, mimetype="text/html")
    response.headers["Cache-Control"] = f"public, max-age={CACHE_SECONDS}" if fresh else "no-cache"
    return response


def _install_cache(state: BlueprintSetupState) -> None:
    state.app.extensions[_CACHE_KEY] = _PageCache()  # one per app: each serves its own engine


api.blueprint.record(_install_cache)
api.blueprint.add_url_rule(STATUS_PATH, "status_page", status_page, methods=["GET"])
