"""Metrics: requests/s, error rate, latency percentiles, CPU and memory per service over a chosen range, bucketed in
SQL (at most 2,000 points a line), with breaker transitions, failure simulations, scaling and load tests on the same
time axis, and the CSV of exactly what is charted; live."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from contract.errors import ConfigError
from contract.settings import Settings
from ui import login, metric_charts, metrics
from ui.format import fmt_count

login.require_login()
st.title("Metrics")
st.caption("Per service and per time bucket, as the engine measured them: requests it routed, their errors and "
           "latency, and CPU and memory scraped from each instance's Prometheus metrics. PostgreSQL buckets the rows "
           "itself (raw rows under a minute, the 1-minute rollup above), so a line never has more than 2,000 points "
           "whatever the range; a gap is a time nothing was measured.")

try:
    MIN_STEP = Settings.from_env().collect_interval  # a bucket is never shorter than one measurement
except ConfigError as exc:
    st.error(f"The collection settings cannot be read: {exc}")
    st.stop()

choices = metrics.service_choices()
if choices is None:  # said on the page; retried until the database answers, then the page runs again
    st.fragment(run_every=metrics.RETRY_S)(metrics.wait_for_database)()
    st.stop()
if not choices:
    st.info("No service yet: register one on the Services page; its metrics appear here once they are collected.")
    st.stop()
chosen = metrics.controls(choices)
if chosen is None:
    st.stop()


def chart(fig: object, key: str, missing: str) -> None:
    """A figure, or what is missing instead of an empty one."""
    if fig is None:
        st.info(missing)
    else:
        st.plotly_chart(fig, key=key)


def live_charts(chosen: metrics.Selection, names: list[str]) -> None:
    """The window's charts, events and CSV; the window follows now a bucket at a time."""
    if not chosen.services:
        st.info("Choose at least one service.")
        return
    reading = metrics.read_window(chosen, datetime.now(UTC), MIN_STEP)
    window, frame, events = reading.window, reading.frame, reading.events
    shown = metrics.fmt_range(window)
    widened = "" if reading.spacing is None else (f" (widened: the rows are {reading.spacing:,.0f} s apart, more "
                                                  f"than the {MIN_STEP:g} s collection interval)")
    st.caption(f"**Bucket {metrics.fmt_step(window.step)}** ({window.step:,d} s){widened} · "
               f"{fmt_count(window.buckets)} buckets per service · {len(chosen.services)} service(s) · {shown}"
               + ("" if chosen.custom else " (the last complete bucket)")
               + f" · refreshes every {metrics.refresh_s(window.step)} s")
    if frame.empty:
        st.info(f"No metrics for the chosen services from {shown}.")
    else:
        colours = metric_charts.service_colours(names)
        zoom_key = shown if chosen.custom else chosen.range_label  # a zoom is kept while the window moves, not over
        c = metric_charts.canvas(frame, window, zoom_key, colours, events, chosen.kinds)
        for q in metric_charts.QUANTITIES[:2]:
            chart(metric_charts.quantity_figure(c, q), f"mx-{q.column}", f"{q.title}: nothing measured.")
            if q == metric_charts.QUANTITIES[0] and metric_charts.many_lines(c):
                st.caption("A service has this colour on every chart below; hover a line for its name.")
        chart(metric_charts.latency_figure(c, chosen.percentiles), "mx-latency",
              "Latency: nothing measured (no request answered), or no percentile chosen.")
        st.caption(metric_charts.LATENCY_NOTE)
        for q in metric_charts.QUANTITIES[2:]:
            chart(metric_charts.quantity_figure(c, q), f"mx-{q.column}",
                  f"{q.title}: not measured (a service needs a metrics path to be scraped).")
    table = metric_charts.event_table(events)
    with st.expander(f"Events in the range ({len(table)})", icon=":material/event_note:"):
        if table.empty:
            st.caption("No breaker transition, failure simulation, scale-up or scale-down, or load test of the chosen "
                       "services in the range.")
        else:
            if events.truncated:
                st.caption(f"Only the newest {metrics.EVENT_LIMIT} of each of: "
                           f"{', '.join(metrics.EVENT_KINDS[k] for k in sorted(events.truncated))}.")
            st.dataframe(table, hide_index=True, key="mx-events-table", column_config={
                "time": st.column_config.DatetimeColumn("time (UTC)", format="YYYY-MM-DD HH:mm:ss"),
                "event": st.column_config.TextColumn(width="large")})
    st.download_button("Download CSV", lambda: metrics.series_csv(frame), file_name=metrics.csv_name(window),
                       mime="text/csv", on_click="ignore", key="mx-download", icon=":material/download:",
                       disabled=frame.empty, help="The frame the charts are drawn from: one row per service per "
                                                  "bucket, every quantity, the bucket's start in ISO 8601 UTC.")


step = chosen.window(datetime.now(UTC), MIN_STEP).step
st.fragment(run_every=metrics.refresh_s(step))(live_charts)(chosen, list(choices))
