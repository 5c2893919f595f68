"""The fleet views of the Overview and Services pages at any size: filters by status and name, counts per status,
and a table of services (or of their instances) where a card per service no longer fits.

Up to CARD_LIMIT services the Overview keeps a card per service; past it one row per service in a table, worst
first: 500 cards are 500 HTML blocks the browser lays out every 5 s, and 500 heartbeats 500 API calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import streamlit as st
from sqlalchemy.orm import Session

from contract.states import HealthState
from db.fleet import FleetFilter, InstanceRow, ServiceRow
from db.incidents import open_incidents
from ui.data import ServiceSummary
from ui.format import fmt_status
from ui.history import CardHistory

__all__ = ["CARD_LIMIT", "STATES", "FleetCounts", "filters", "instance_table", "open_incident_titles",
           "service_table", "show_counts", "summaries"]

CARD_LIMIT = 12  # services; more and the Overview shows the table
STATES: tuple[str, ...] = tuple(s.value for s in (HealthState.HEALTHY, HealthState.DEGRADED, HealthState.UNHEALTHY,
                                                  HealthState.UNKNOWN))


@dataclass(frozen=True)
class FleetCounts:
    """Services and instances per status over the whole fleet (a status with none is absent)."""

    services: Mapping[str, int]
    instances: Mapping[str, int]

    @property
    def total_services(self) -> int:
        """Every registered service."""
        return sum(self.services.values())

    @property
    def total_instances(self) -> int:
        """Every registered instance."""
        return sum(self.instances.values())


def filters(key: str) -> FleetFilter:
    """A status multiselect and a name box (keys `<key>-status`, `<key>-name`); nothing chosen is no filter."""
    left, right = st.columns([1, 1])
    chosen = left.multiselect("Status", STATES, key=f"{key}-status", format_func=fmt_status,
                              placeholder="any status", help="Services whose latest status is any of these.")
    name = right.text_input("Name contains", key=f"{key}-name", placeholder="e.g. orders",
                            help="Part of the service's name, any case.")
    return FleetFilter(tuple(chosen), name.strip() or None)


def show_counts(counts: FleetCounts) -> None:
    """Services per status as four metrics, the instances per status underneath."""
    for col, state in zip(st.columns(len(STATES)), STATES, strict=True):
        col.metric(fmt_status(state), f"{counts.services.get(state, 0):,d}", border=True,
                   help=f"Services whose latest status is {state}, of {counts.total_services:,d}.")
    st.caption("Instances: " + " · ".join(f"{fmt_status(s)} {counts.instances.get(s, 0):,d}" for s in STATES)
               + f" · of {counts.total_instances:,d}")


def service_table(rows: Sequence[ServiceRow], history: Mapping[int, CardHistory],
                  incidents: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """One row per service: what its card shows, but the heartbeat (uptime None = nothing observed)."""
    return pd.DataFrame({
        "service": [r.name for r in rows],
        "status": [fmt_status(r.status) for r in rows],
        "instances": [len(r.instances) for r in rows],
        "healthy": [sum(i.status == "healthy" for i in r.instances) for r in rows],
        "uptime 24 h %": [_uptime(history.get(r.id), day=True) for r in rows],
        "uptime 30 d %": [_uptime(history.get(r.id), day=False) for r in rows],
        "open incidents": [len(incidents.get(r.name, ())) for r in rows],
        "last check": pd.to_datetime(pd.Series([_last_check(r) for r in rows], dtype=object), utc=True),
        "kind": ["managed" if r.managed else "external" for r in rows],
    })


def _uptime(h: CardHistory | None, *, day: bool) -> float | None:
    if h is None:
        return None
    return h.uptime_24h if day else h.uptime_30d


def _last_check(row: ServiceRow) -> datetime | None:
    checks = [i.last_health_check for i in row.instances if i.last_health_check is not None]
    return max(checks) if checks else None


def instance_table(rows: Sequence[ServiceRow]) -> pd.DataFrame:
    """One row per instance of these services, in their order (a service without one: a row of its own with the
    instance cells empty): what the Services page tabulates."""
    flat: list[tuple[ServiceRow, InstanceRow | None]] = [
        (r, i) for r in rows for i in (r.instances or (None,))]
    return pd.DataFrame({
        "service": [r.name for r, _ in flat],
        "status": [fmt_status(r.status) for r, _ in flat],
        "instance URL": [i.url if i else None for _, i in flat],
        "instance status": [fmt_status(i.status) if i else None for _, i in flat],
        "latency ms": pd.Series([i.latency_ms if i else None for _, i in flat], dtype=float),
        "last check": pd.to_datetime(pd.Series([i.last_health_check if i else None for _, i in flat], dtype=object),
                                     utc=True),
        "last error": [i.last_error if i else None for _, i in flat],
    })


def open_incident_titles(session: Session) -> dict[str, list[str]]:
    """Titles of the open incidents by service name, oldest first."""
    out: dict[str, list[str]] = {}
    for incident in open_incidents(session):
        if incident.service_name is not None:
            out.setdefault(incident.service_name, []).append(incident.title)
    return out


def summaries(rows: Sequence[ServiceRow]) -> list[ServiceSummary]:
    """db.fleet rows as the pages' service summaries (the forms and pickers), by id as given."""
    return [
        ServiceSummary(
            id=r.id, name=r.name, status=r.status, managed=r.managed, weight=r.weight, health_path=r.health_path,
            metrics_path=r.metrics_path, urls=tuple(i.url for i in r.instances), instance_count=len(r.instances),
            healthy_count=sum(i.status == "healthy" for i in r.instances), last_check=_last_check(r),
        )
        for r in rows
    ]
