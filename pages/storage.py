"""Storage: the metrics table's daily partitions (its shards) with their range, status, rows and size, the
retention that drops them, and the 1-minute rollup; live."""

from __future__ import annotations

import streamlit as st

from contract.errors import ConfigError
from contract.settings import Settings
from ui import login, storage

REFRESH_S = 10

login.require_login()
st.title("Storage")
st.caption("Metrics are kept in PostgreSQL in one partition per UTC day: a day's rows are written to its own table, "
           "a chart reads only the days it shows, and retention drops a whole day at once instead of deleting rows. "
           "The engine makes the coming days' partitions ahead of time; rows outside every day's range land in the "
           "DEFAULT partition until their day is made. A 1-minute rollup, kept as rows arrive, serves the long "
           "chart windows.")

try:
    settings = Settings.from_env()
except ConfigError as exc:
    st.error(f"The storage settings cannot be read: {exc}")
    st.stop()


def kpis(k: storage.StorageKpis) -> None:
    """The headline figures in two rows."""
    top = st.columns(4)
    top[0].metric("Partitions", k.partitions, help=k.partitions_help, border=True)
    top[1].metric("Total size", k.total_size, help="Tables and indexes of every partition, on disk.", border=True)
    top[2].metric("Rows (estimated)", k.rows, help=k.rows_help, border=True)
    top[3].metric("Retention", k.retention, border=True,
                  help="METRICS_RETENTION_DAYS: a day's partition is dropped once its end is this far in the past.")
    bottom = st.columns(4)
    bottom[0].metric("Partitions ahead", k.ahead, help=k.ahead_help, border=True)
    bottom[1].metric("Oldest data kept (UTC)", k.oldest_row, help=k.oldest_help, border=True)
    bottom[2].metric("Next drop (UTC)", k.next_drop, help=k.next_drop_help, border=True)


def live_storage(retention_days: int, partitions_ahead: int) -> None:
    """The figures, the partition table, the size chart and the rollup, from PostgreSQL's catalog."""
    snap = storage.read_storage(retention_days)
    k = storage.storage_kpis(snap, retention_days, partitions_ahead)
    kpis(k)
    st.subheader("Partitions")
    st.dataframe(storage.partition_table(snap.partitions), hide_index=True, key="storage-table", column_config={
        "partition": st.column_config.TextColumn(width="medium"),
        "status": st.column_config.TextColumn(
            help="active: today's, written to now · future: made ahead · sealed: a past day, kept · expired: past "
                 "the retention, the next upkeep run drops it · default: rows outside every day's range"),
        "rows (estimate)": st.column_config.TextColumn(
            help="PostgreSQL's estimate from its last ANALYZE; n/a until a partition holding rows is analysed"),
        "size": st.column_config.TextColumn(help="Table and indexes on disk"),
    })
    fig = storage.size_bars(snap.partitions)
    if fig is None:
        st.info("The metrics table has no partition: run `python -m engine migrate`.")
    else:
        st.plotly_chart(fig, key="storage-sizes")
    st.subheader("1-minute rollup")
    left, right, _ = st.columns([1, 1, 2])
    left.metric("Rollup size", k.rollup_size, border=True, help="metrics_1m, table and indexes on disk.")
    right.metric("Rollup rows (estimated)", k.rollup_rows, border=True,
                 help="One row per service per minute; n/a until PostgreSQL has analysed the table.")
    st.caption(f"Read at {storage.fmt_when(snap.read_at, snap.read_at)} · sizes and row estimates from PostgreSQL's "
               f"catalog · refreshes every {REFRESH_S} s")


st.fragment(run_every=REFRESH_S)(live_storage)(settings.retention_days, settings.partitions_ahead)
