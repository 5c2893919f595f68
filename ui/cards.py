"""The Overview's service cards: one HTML grid, a card per service tinted by its status (ui.format's palette).

One element for the whole grid, not a bordered container and three texts per service: with 20-odd services
that was about a hundred elements for the browser to build on every visit, a tenth of the page's time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape

from ui.data import ServiceSummary
from ui.format import STATUS_COLOURS, fmt_ago, status_emoji

__all__ = ["service_cards"]


def service_cards(services: Sequence[ServiceSummary], now: datetime) -> str:
    """The cards' HTML; their look is in ui.format.dashboard_css (classes mm-cards, mm-card, mm-<status>)."""
    cards = []
    for s in services:
        tint = s.status if s.status in STATUS_COLOURS else "unknown"
        kind = "managed" if s.managed else "external"
        cards.append(
            f'<div class="mm-card mm-{tint}" data-service="{escape(s.name)}">'
            f'<div>{status_emoji(s.status)} <b>{escape(s.name)}</b> <span class="mm-badge">{escape(s.status)}</span>'
            f"</div><div>Instances <b>{s.instance_count}</b> · healthy <b>{s.healthy_count}</b></div>"
            f'<div class="mm-caption">Last check {fmt_ago(s.last_check, now)} · {kind}</div></div>'
        )
    return '<div class="mm-cards">' + "".join(cards) + "</div>"
