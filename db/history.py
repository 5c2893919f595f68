"""Health history: rollup upserts, uptime from exact state changes, daily bars, check latency, retention.

Time is split into spans between consecutive transitions of a service (or an instance): a span's state is
the transition's `to_state`. Up = healthy or degraded (at least one instance serves), down = unhealthy (none
does), unknown = 'unknown' (not observed: before the first check, engine stopped, instance removed) and any
time not covered by a span. The last span of an entity ends at the window's end, but never later than the
last evidence of observation (the newest rollup minute of the entity, or the transition itself) plus
`grace`: a state is not extended over time in which no engine checked it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from contract.events import CheckRollupEvent
from db.models import InstanceHealthTransition, ServiceHealthTransition

__all__ = [
    "Availability",
    "LatencyPoint",
    "close_open_periods",
    "daily_availability",
    "delete_history_older",
    "grace_for",
    "instance_availability",
    "instance_transitions",
    "latency_series",
    "service_availability",
    "service_transitions",
    "services_availability",
    "services_daily_availability",
    "split_days",
    "upsert_rollups",
    "window_checks",
]



def grace_for(check_interval_s: float) -> timedelta:
    """How long after its last evidence a state still counts as observed: a minute's row is written at the first
    round after the minute ends (one interval), then by the writer; two intervals and two minutes cover that."""
    return timedelta(seconds=120.0 + 2.0 * check_interval_s)


DEFAULT_GRACE = grace_for(5.0)
_COUNTS = ("checks", "up", "degraded", "down", "latency_n", "latency_sum_ms")


# -- writing ------------------------------------------------------------------------------------------------

def _merged(events: Sequence[CheckRollupEvent], day: bool) -> dict[tuple[int, Any, int], list[Any]]:
    out: dict[tuple[int, Any, int], list[Any]] = {}
    for e in events:
        when: Any = e.minute.astimezone(UTC).date() if day else e.minute
        row = out.get((e.service_id, when, e.instance_id))
        values = [e.checks, e.up, e.degraded, e.down, e.latency_n, e.latency_sum_ms, e.latency_max_ms]
        if row is None:
            out[(e.service_id, when, e.instance_id)] = values
            continue
        for k in range(6):
            row[k] += values[k]
        row[6] = max((v for v in (row[6], values[6]) if v is not None), default=None)
    return out


def _upsert(session: Session, table: str, key: str, key_type: str,
            rows: dict[tuple[int, Any, int], list[Any]]) -> None:
    adds = ", ".join(f"{c} = {table}.{c} + EXCLUDED.{c}" for c in _COUNTS)
    session.execute(text(f"""
        INSERT INTO {table} (service_id, {key}, instance_id, {", ".join(_COUNTS)}, latency_max_ms)
        SELECT * FROM unnest(CAST(:s AS int[]), CAST(:k AS {key_type}[]), CAST(:i AS int[]), CAST(:c AS int[]),
                             CAST(:u AS int[]), CAST(:g AS int[]), CAST(:d AS int[]), CAST(:n AS int[]),
                             CAST(:ls AS float8[]), CAST(:lx AS float8[]))
        ON CONFLICT (service_id, {key}, instance_id) DO UPDATE SET {adds},
            latency_max_ms = greatest({table}.latency_max_ms, EXCLUDED.latency_max_ms)
    """), {  # noqa: S608 - table and key are this module's constants
        "s": [k[0] for k in rows], "k": [k[1] for k in rows], "i": [k[2] for k in rows],
        **{name: [v[n] for v in rows.values()] for n, name in enumerate(("c", "u", "g", "d", "n", "ls", "lx"))},
    })


def upsert_rollups(session: Session, events: Sequence[CheckRollupEvent]) -> None:
    """Add the events to their minute (instance_checks_1m) and UTC day (instance_checks_1d) rows: a minute
    written twice (part before a stop, part after the restart) sums, it does not collide."""
    _upsert(session, "instance_checks_1m", "minute", "timestamptz", _merged(events, day=False))
    _upsert(session, "instance_checks_1d", "day", "date", _merged(events, day=True))


def close_open_periods(session: Session, now: datetime) -> tuple[int, int]:
    """Instances and services whose last recorded state is not 'unknown' (an engine that stopped without
    saying so) become unknown at their last evidence: the end of their newest rollup minute, or the transition
    itself. Run at start, before any check; returns (instances, services) closed."""
    instances = session.execute(text("""
        INSERT INTO instance_health_transitions (service_id, instance_id, from_state, to_state, at)
        SELECT t.service_id, t.instance_id, t.to_state, 'unknown',
               least(CAST(:now AS timestamptz), greatest(t.at, (
                   SELECT max(m.minute) + interval '1 minute' FROM instance_checks_1m m
                   WHERE m.service_id = t.service_id AND m.instance_id = t.instance_id
                     AND m.minute >= t.at - interval '1 minute')))
        FROM (SELECT DISTINCT ON (instance_id) * FROM instance_health_transitions
              ORDER BY instance_id, at DESC, id DESC) t
        WHERE t.to_state <> 'unknown'
    """), {"now": now}).rowcount  # type: ignore[attr-defined]
    services = session.execute(text("""
        INSERT INTO service_health_transitions (service_id, from_state, to_state, at)
        SELECT t.service_id, t.to_state, 'unknown',
               least(CAST(:now AS timestamptz), greatest(t.at, (
                   SELECT max(m.minute) + interval '1 minute' FROM instance_checks_1m m
                   WHERE m.service_id = t.service_id AND m.minute >= t.at - interval '1 minute')))
        FROM (SELECT DISTINCT ON (service_id) * FROM service_health_transitions
              ORDER BY service_id, at DESC, id DESC) t
        WHERE t.to_state <> 'unknown'
    """), {"now": now}).rowcount  # type: ignore[attr-defined]
    return int(instances), int(services)


def delete_history_older(session: Session, cutoff: datetime) -> int:
    """Retention: transitions before cutoff and daily rollups of days before it. The newest transition at or
    before the cutoff of each existing service and instance stays: it is the state that still holds."""
    deleted = 0
    for table, key, owner in (("instance_health_transitions", "instance_id", "instances"),
                              ("service_health_transitions", "service_id", "services")):
        deleted += session.execute(text(f"""
            DELETE FROM {table} t WHERE t.at < :c AND (
                NOT EXISTS (SELECT 1 FROM {owner} o WHERE o.id = t.{key})
                OR EXISTS (SELECT 1 FROM {table} n WHERE n.{key} = t.{key} AND n.at <= :c
                           AND (n.at, n.id) > (t.at, t.id)))
        """), {"c": cutoff}).rowcount  # type: ignore[attr-defined]  # noqa: S608 - constants
    deleted += session.execute(text("DELETE FROM instance_checks_1d WHERE day < :d"),
                               {"d": cutoff.astimezone(UTC).date()}).rowcount  # type: ignore[attr-defined]
    return int(deleted)


# -- reading: exact availability from transitions ----------------------------------------------------------

@dataclass(frozen=True)
class Availability:
    """Seconds up and down of one service or instance in a window, and the down periods that began in it."""

    up_s: float
    down_s: float
    incidents: int

    @property
    def observed_s(self) -> float:
        """Seconds whose state is known (up or down)."""
        return self.up_s + self.down_s

    @property
    def uptime_percent(self) -> float | None:
        """Up over observed time, in percent; None when nothing was observed."""
        return None if self.observed_s <= 0 else round(self.up_s * 100.0 / self.observed_s, 4)


NOTHING = Availability(0.0, 0.0, 0)


def _spans(level: Literal["service", "instance"]) -> str:
    """CTEs ending in spans(key, to_state, ord, start, stop): ord 0 for the state carried in at :a."""
    if level == "service":
        table, key, seen = "service_health_transitions", "service_id", "m.service_id = s.key"
    else:
        table, key, seen = "instance_health_transitions", "instance_id", "m.service_id = :sid AND m.instance_id = s.key"
    return f"""
    t AS (
        SELECT k.key, p.to_state, CAST(:a AS timestamptz) AS at, p.at AS real_at, 0 AS ord, p.id
        FROM unnest(CAST(:keys AS int[])) AS k(key) CROSS JOIN LATERAL (
            SELECT to_state, at, id FROM {table} WHERE {key} = k.key AND at < :a ORDER BY at DESC, id DESC LIMIT 1
        ) p
        UNION ALL
        SELECT {key}, to_state, at, at, 1, id FROM {table}
        WHERE {key} = ANY(CAST(:keys AS int[])) AND at >= :a AND at < :b
    ),
    s AS (
        SELECT key, to_state, at AS start, real_at, ord, lead(at) OVER w AS stop,
               row_number() OVER (PARTITION BY key ORDER BY at DESC, ord DESC, id DESC) AS rn
        FROM t WINDOW w AS (PARTITION BY key ORDER BY at, ord, id)
    ),
    spans AS (
        SELECT s.key, s.to_state, s.ord, s.start,
               greatest(s.start, coalesce(s.stop, least(CAST(:b AS timestamptz),
                                                        greatest(s.real_at, seen.last) + :grace))) AS stop
        FROM s LEFT JOIN LATERAL (
            SELECT m.minute + interval '1 minute' AS last FROM instance_checks_1m m
            WHERE s.rn = 1 AND s.to_state <> 'unknown' AND {seen}
              AND m.minute >= s.real_at - interval '1 minute' AND m.minute < :b
            ORDER BY m.minute DESC LIMIT 1
        ) seen ON true
    )"""  # noqa: S608 - table, key and seen are constants above


_SECONDS = "coalesce(sum(extract(epoch FROM stop - start)) FILTER (WHERE {f}), 0)::float8"
_UP = "to_state IN ('healthy', 'degraded')"
_DOWN = "to_state = 'unhealthy'"


def _availability(session: Session, level: Literal["service", "instance"], service_id: int, keys: Sequence[int],
                  start: datetime, end: datetime, grace: timedelta) -> dict[int, Availability]:
    if not keys:
        return {}
    sql = f"""
        WITH {_spans(level)}
        SELECT key, {_SECONDS.format(f=_UP)}, {_SECONDS.format(f=_DOWN)},
               count(*) FILTER (WHERE ord = 1 AND {_DOWN})
        FROM spans GROUP BY key
    """  # noqa: S608 - fragments of this module
    rows = session.execute(text(sql), {"keys": list(keys), "sid": service_id, "a": start, "b": end,
                                       "grace": grace}).all()
    found = {int(k): Availability(float(up), float(down), int(n)) for k, up, down, n in rows}
    return {k: found.get(k, NOTHING) for k in keys}


def service_availability(session: Session, service_id: int, start: datetime, end: datetime,
                         grace: timedelta = DEFAULT_GRACE) -> Availability:
    """The service's up and down seconds in [start, end) and the down periods that began in it."""
    return _availability(session, "service", service_id, [service_id], start, end, grace)[service_id]


def services_availability(session: Session, service_ids: Sequence[int], start: datetime, end: datetime,
                          grace: timedelta = DEFAULT_GRACE) -> dict[int, Availability]:
    """service_availability of several services in one query (the Overview's cards)."""
    return _availability(session, "service", 0, service_ids, start, end, grace)


def instance_availability(session: Session, service_id: int, instance_ids: Sequence[int], start: datetime,
                          end: datetime, grace: timedelta = DEFAULT_GRACE) -> dict[int, Availability]:
    """Each instance's up (healthy or degraded) and down (unhealthy) seconds in [start, end)."""
    return _availability(session, "instance", service_id, instance_ids, start, end, grace)


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=k) for k in range((last - first).days + 1)]


def services_daily_availability(session: Session, service_ids: Sequence[int], first: date, last: date,
                                end: datetime, grace: timedelta = DEFAULT_GRACE) -> dict[int, dict[date, Availability]]:
    """Each service's availability per UTC day from first to last (inclusive, clipped at end), every service in one
    query; a day nothing was observed is NOTHING."""
    days = _days(first, last)
    if not service_ids or not days:
        return {}
    starts = [_midnight(d) for d in days]
    sql = f"""
        WITH {_spans("service")},
        days AS (SELECT lo, lo + interval '1 day' AS hi FROM unnest(CAST(:los AS timestamptz[])) AS d(lo))
        SELECT spans.key, days.lo,
               coalesce(sum(extract(epoch FROM least(stop, hi) - greatest(start, lo)))
                        FILTER (WHERE {_UP}), 0)::float8,
               coalesce(sum(extract(epoch FROM least(stop, hi) - greatest(start, lo)))
                        FILTER (WHERE {_DOWN}), 0)::float8,
               count(*) FILTER (WHERE ord = 1 AND {_DOWN} AND start >= lo)
        FROM days JOIN spans ON spans.start < days.hi AND spans.stop > days.lo
        GROUP BY spans.key, days.lo
    """  # noqa: S608 - fragments of this module
    rows = session.execute(text(sql), {
        "keys": list(service_ids), "sid": 0, "a": starts[0], "b": min(end, _midnight(last) + timedelta(days=1)),
        "grace": grace, "los": starts}).all()
    found: dict[int, dict[date, Availability]] = {int(k): {} for k in service_ids}
    for key, lo, up, down, n in rows:
        found[int(key)][lo.astimezone(UTC).date()] = Availability(float(up), float(down), int(n))
    return {k: {d: per_day.get(d, NOTHING) for d in days} for k, per_day in found.items()}


def daily_availability(session: Session, service_id: int, first: date, last: date, end: datetime,
                       grace: timedelta = DEFAULT_GRACE) -> dict[date, tuple[Availability, int]]:
    """Per UTC day from first to last (inclusive, clipped at end): the service's availability and its checks."""
    found = services_daily_availability(session, [service_id], first, last, end, grace).get(service_id, {})
    checks: dict[date, int] = dict(session.execute(text("""
        SELECT day, sum(checks) FROM instance_checks_1d WHERE service_id = :sid AND day >= :d0 AND day <= :d1
        GROUP BY day
    """), {"sid": service_id, "d0": first, "d1": last}).all())
    return {d: (found.get(d, NOTHING), int(checks.get(d, 0))) for d in _days(first, last)}


# -- reading: checks and latency from the rollups -----------------------------------------------------------

def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def split_days(start: datetime, end: datetime) -> tuple[tuple[date, date] | None, list[tuple[datetime, datetime]]]:
    """[start, end) as whole UTC days [d0, d1) read from the daily rollup plus the edges read per minute."""
    first = start.astimezone(UTC).date()
    d0 = first if _midnight(first) == start else first + timedelta(days=1)
    d1 = end.astimezone(UTC).date()
    if d0 >= d1:
        return None, [(start, end)]
    edges = [(lo, hi) for lo, hi in ((start, _midnight(d0)), (_midnight(d1), end)) if lo < hi]
    return (d0, d1), edges


def window_checks(session: Session, service_id: int, start: datetime, end: datetime) -> dict[int, int]:
    """Checks per instance of the service in the window: whole days from the daily rollup, the edges from the
    closed minutes (a minute counts when it begins in the window)."""
    days, edges = split_days(start, end)
    parts: list[str] = []
    params: dict[str, Any] = {"sid": service_id}
    if days is not None:
        parts.append("SELECT instance_id, checks FROM instance_checks_1d "
                     "WHERE service_id = :sid AND day >= :d0 AND day < :d1")
        params |= {"d0": days[0], "d1": days[1]}
    for n, (lo, hi) in enumerate(edges):
        parts.append("SELECT instance_id, checks FROM instance_checks_1m "  # noqa: S608 - n is an index
                     f"WHERE service_id = :sid AND minute >= :lo{n} AND minute < :hi{n}")
        params |= {f"lo{n}": lo, f"hi{n}": hi}
    union = " UNION ALL ".join(parts)
    sql = f"SELECT instance_id, sum(checks) FROM ({union}) x GROUP BY instance_id"  # noqa: S608 - fixed fragments
    rows = session.execute(text(sql), params).all()
    return {int(i): int(n) for i, n in rows}


@dataclass(frozen=True)
class LatencyPoint:
    """One step of a service's check latency: its checks, the mean and the max latency (None: none measured)."""

    at: datetime
    checks: int
    latency_avg_ms: float | None
    latency_max_ms: float | None


def latency_series(session: Session, service_id: int, start: datetime, end: datetime,
                   step: timedelta) -> list[LatencyPoint]:
    """The service's checks and check latency per step over its instances, oldest first; a step of a day or
    more reads the daily rollup, shorter steps the minute rollup. Steps without checks are absent."""
    if step >= timedelta(days=1):
        source, column, params = "instance_checks_1d", "day", {"lo": start.astimezone(UTC).date(),
                                                                "hi": end.astimezone(UTC).date()}
        bucket, upper = "CAST(day AS timestamp) AT TIME ZONE 'UTC'", "<="
    else:
        source, column, params = "instance_checks_1m", "minute", {"lo": start, "hi": end}
        bucket, upper = "date_bin(:step, minute, TIMESTAMPTZ '2000-01-01 00:00:00+00')", "<"
    rows = session.execute(text(f"""
        SELECT {bucket} AS at, sum(checks), sum(latency_sum_ms) / nullif(sum(latency_n), 0), max(latency_max_ms)
        FROM {source} WHERE service_id = :sid AND {column} >= :lo AND {column} {upper} :hi
        GROUP BY 1 ORDER BY 1
    """), {"sid": service_id, "step": step, **params}).all()  # noqa: S608 - constants
    return [LatencyPoint(at, int(n), None if avg is None else float(avg), None if mx is None else float(mx))
            for at, n, avg, mx in rows]


# -- reading: the transitions themselves (incident timelines) ----------------------------------------------

def instance_transitions(session: Session, service_id: int, start: datetime,
                         end: datetime) -> list[InstanceHealthTransition]:
    """The state changes of the service's instances in [start, end), oldest first."""
    return list(session.scalars(
        select(InstanceHealthTransition)
        .where(InstanceHealthTransition.service_id == service_id, InstanceHealthTransition.at >= start,
               InstanceHealthTransition.at < end)
        .order_by(InstanceHealthTransition.at, InstanceHealthTransition.id)
    ).all())


def service_transitions(session: Session, service_id: int, start: datetime,
                        end: datetime) -> list[ServiceHealthTransition]:
    """The service's aggregate state changes in [start, end), oldest first."""
    return list(session.scalars(
        select(ServiceHealthTransition)
        .where(ServiceHealthTransition.service_id == service_id, ServiceHealthTransition.at >= start,
               ServiceHealthTransition.at < end)
        .order_by(ServiceHealthTransition.at, ServiceHealthTransition.id)
    ).all())
