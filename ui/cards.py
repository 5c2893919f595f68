"""The Overview's service cards: one HTML grid, a card per service tinted by its status (ui.format's palette).

One element for the whole grid, not a bordered container and three texts per service: with 20-odd services
that was about a hundred elements for the browser to build on every visit, a tenth of the page's time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape

from ui.data import ServiceSummary
from ui.format import STATUS_COLOURS, fmt_ago, status_emoji
from ui.history import CardHistory, fmt_uptime, heartbeat_html

BEATS = 40  # heartbeat cells per card: the latest checks of all the service's instances

__all__ = ["service_cards"]


def _history(h: CardHistory | None) -> str:
    if h is None:
        return ""
    return (f'<div class="mm-uptime">Uptime 24 h <b>{fmt_uptime(h.uptime_24h)}</b> · 30 d '
            f"<b>{fmt_uptime(h.uptime_30d)}</b></div>{heartbeat_html(h.checks, BEATS)}")


def _incidents(titles: Sequence[str]) -> str:
    if not titles:
        return ""
    return (f'<div class="mm-incidents">🚨 <b>{len(titles)}</b> open incident{"s" if len(titles) > 1 else ""}: '
            f"{escape(titles[-1])}</div>")


def service_cards(services: Sequence[ServiceSummary], now: datetime,
                  history: Mapping[int, CardHistory] | None = None,
                  incidents: Mapping[str, Sequence[str]] | None = None) -> str:
    """The cards' HTML; their look is in ui.format.dashboard_css (classes mm-cards, mm-card, mm-<status>). With
    `history`, a card also shows the service's uptime and its heartbeat; with `incidents` (titles of the open
    ones by service name, oldest first), how many are open and the newest's title."""
    cards = []
    for s in services:
        tint = s.status if s.status in STATUS_COLOURS else "unknown"
        kind = "managed" if s.managed else "external"
        cards.append(
            f'<div class="mm-card mm-{tint}" data-service="{escape(s.name)}">'
            f'<div>{status_emoji(s.status)} <b>{escape(s.name)}</b> <span class="mm-badge">{escape(s.status)}</span>'
            f"</div><div>Instances <b>{s.instance_count}</b> · healthy <b>{s.healthy_count}</b></div>"
            f"{_history((history or {}).get(s.id))}{_incidents((incidents or {}).get(s.name, ()))}"
            f'<div class="mm-caption">Last check {fmt_ago(s.last_check, now)} · {kind}</div></div>'
        )
    return '<div class="mm-cards">' + "".join(cards) + "</div>"
