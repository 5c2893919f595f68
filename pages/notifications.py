"""Notifications: the channels alerts are sent over (secrets masked by the API; create, edit, delete, send a test)
and the delivery log of every notification with its attempts and outcome (live)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import streamlit as st

from contract.notifications import ChannelOut, ChannelType, DeliveryOut, DeliveryStatus
from db import alerting_reads
from ui import api, data, login, notifications, session
from ui.notifications import CONFIG_FIELDS, TYPE_HELP, ConfigField
from ui.session import Role

REFRESH_S = 5
ANY = "any"
ROW_LIMITS = (50, 100, 200, 500, 1000)
COUNT_WINDOW = timedelta(hours=24)

login.require_login()
# channels hold secrets: operators list them (masked), admins change and test them
CAN_LIST = session.can(Role.OPERATOR)
CAN_ACT = session.can(Role.ADMIN)
ACT_HELP = session.needs(Role.ADMIN)
st.title("Notifications")
data.show_flash()


def field_input(f: ConfigField, key: str, shown: Mapping[str, Any] | None) -> Any:
    """One config field's input; a secret (or a value the API showed masked) is never prefilled."""
    current = None if shown is None else shown.get(f.key)
    keep = shown is not None and notifications.kept_when_empty(f, current)
    helptext = f.help + (" Leave empty to keep the stored one." if keep else "")
    label = f.label + ("" if f.required else " (optional)")
    if f.kind == "int":
        return st.number_input(label, 1, 65_535, int(current if current is not None else f.default), 1, key=key,
                               help=helptext)
    if f.kind == "bool":
        return st.checkbox(label, value=bool(current if current is not None else f.default), key=key, help=helptext)
    if f.kind == "lines":
        text = "\n".join(current) if isinstance(current, list) else ""
        return st.text_area(label, value=text, key=key, help=helptext, height=90)
    if f.secret or keep:
        return st.text_input(label, value="", key=key, type="password", help=helptext, autocomplete="new-password",
                             placeholder="stored; type to replace" if keep else "")
    return st.text_input(label, value="" if current is None else str(current), key=key, help=helptext)


def config_inputs(prefix: str, kind: ChannelType, shown: Mapping[str, Any] | None) -> dict[str, Any]:
    """Every field of the type's config, two to a row."""
    fields = CONFIG_FIELDS[kind]
    values: dict[str, Any] = {}
    for start in range(0, len(fields), 2):
        cols = st.columns(2)
        for col, f in zip(cols, fields[start:start + 2], strict=False):
            with col:
                values[f.key] = field_input(f, f"{prefix}-{f.key}", shown)
    return values


def new_channel_form() -> None:
    """POST /api/alert-channels; cleared on success, kept on an error (which names the field)."""
    kind = st.radio("Type", list(ChannelType), key="ch-new-type", horizontal=True, format_func=lambda t: t.value,
                    help="How notifications travel; the fields below follow it.") or ChannelType.WEBHOOK
    st.caption(TYPE_HELP[kind])
    prefix = f"ch-new-{kind.value}"
    with st.form(prefix, border=False):
        name = st.text_input("Name", key=f"{prefix}-name", max_chars=100,
                             help="Unique; letters, digits, '.', '_' or '-'. Rules pick channels by it.")
        values = config_inputs(prefix, kind, None)
        go = st.form_submit_button("Create channel", type="primary", key=f"{prefix}-submit", disabled=not CAN_ACT,
                                   help=ACT_HELP)
    if go:
        body = notifications.channel_body(name, kind, values, editing=False)
        reset = [f"{prefix}-name", *(f"{prefix}-{f.key}" for f in CONFIG_FIELDS[kind])]
        data.act(lambda: api.create_alert_channel(body), lambda r: f"Channel {r.name} ({r.type.value}) created.",
                 reset=reset, labels=notifications.channel_labels(kind))


def edit_channel_form(channels: list[ChannelOut]) -> None:
    """PUT /api/alert-channels/<id>: secrets left empty are kept by the engine."""
    by_id = {c.id: c for c in channels}
    chosen = st.selectbox("Channel", list(by_id), key="ch-edit-pick",
                          format_func=lambda i: f"{by_id[i].name} ({by_id[i].type.value})")
    if chosen is None:
        return
    c = by_id[chosen]
    prefix = f"ch-edit-{c.id}"
    with st.form(prefix, border=False):
        name = st.text_input("Name", value=c.name, key=f"{prefix}-name", max_chars=100, help="Unique.")
        values = config_inputs(prefix, c.type, c.config)
        go = st.form_submit_button("Save channel", type="primary", key=f"{prefix}-submit", disabled=not CAN_ACT,
                                   help=ACT_HELP)
    if go:
        body = notifications.channel_body(name, c.type, values, editing=True, shown=c.config)
        secret_keys = [f"{prefix}-{f.key}" for f in CONFIG_FIELDS[c.type] if f.secret]
        data.act(lambda: api.update_alert_channel(c.id, body), lambda r: f"Channel {r.name} saved.",
                 reset=secret_keys, labels=notifications.channel_labels(c.type))


def delete_channel_form(channels: list[ChannelOut]) -> None:
    """DELETE /api/alert-channels/<id> after an explicit confirmation."""
    by_id = {c.id: c for c in channels}
    data.delete_form("ch", "channel", {c.id: c.name for c in channels},
                     "Rules stop notifying it; its past deliveries stay in the log.", api.delete_alert_channel,
                     label=lambda i: f"{by_id[i].name} ({by_id[i].type.value})", disabled=not CAN_ACT, why=ACT_HELP)


def show_test_outcome(name: str, d: DeliveryOut) -> None:
    """What became of a test notification."""
    if d.status is DeliveryStatus.DELIVERED:
        st.success(f"Test delivered to {name} after {d.attempts} attempt(s).", icon=":material/check_circle:")
    elif d.status is DeliveryStatus.FAILED:
        st.error(f"Test to {name} failed after {d.attempts} attempt(s): {d.lastError or 'no error given'}")
    else:
        st.warning(f"Test to {name} is {d.status.value} after {d.attempts} attempt(s)"
                   + (f": {d.lastError}" if d.lastError else "") + "; the delivery log shows what follows.")


def test_form(channels: list[ChannelOut]) -> None:
    """POST /api/alert-channels/<id>/test: sent now, the outcome shown here and in the delivery log."""
    by_id = {c.id: c for c in channels}
    c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
    chosen = c1.selectbox("Channel", list(by_id), key="ch-test-pick",
                          format_func=lambda i: f"{by_id[i].name} ({by_id[i].type.value})")
    if c2.button("Send test", key="ch-test", icon=":material/send:", width="stretch",
                 disabled=not CAN_ACT or chosen is None, help=ACT_HELP or "Send a test notification now"):
        outcome = data.fetch_or_none(lambda: api.test_alert_channel(int(chosen or 0)))
        if outcome is not None:
            show_test_outcome(by_id[int(chosen or 0)].name, outcome)


@st.fragment(run_every=REFRESH_S)
def live_log(channel: int | None, statuses: list[DeliveryStatus], limit: int) -> None:
    """The delivery log, newest first, and the counts of the last 24 h."""
    now = datetime.now(UTC)
    with data.reading() as db_session:
        counts = alerting_reads.delivery_counts(db_session, now - COUNT_WINDOW)
        rows = alerting_reads.deliveries(db_session, channel, statuses, limit)
    cols = st.columns(3)
    cols[0].metric("Delivered, 24 h", counts[DeliveryStatus.DELIVERED], border=True,
                   help="Notifications that arrived, of those created in the last 24 hours.")
    cols[1].metric("Waiting", counts[DeliveryStatus.PENDING] + counts[DeliveryStatus.RETRYING], border=True,
                   help="Not yet sent, or failed and waiting for the next attempt.")
    cols[2].metric("Failed, 24 h", counts[DeliveryStatus.FAILED], border=True,
                   help="Given up after every attempt failed.")
    if rows:
        st.dataframe(notifications.delivery_table(rows), hide_index=True, key="deliveries-table", placeholder="",
                     column_config={
                         "created": st.column_config.DatetimeColumn("created (UTC)", format="MM-DD HH:mm:ss"),
                         "delivered": st.column_config.DatetimeColumn("delivered (UTC)", format="MM-DD HH:mm:ss"),
                         "next attempt": st.column_config.DatetimeColumn("next attempt (UTC)",
                                                                         format="MM-DD HH:mm:ss"),
                         "attempts": st.column_config.NumberColumn(help="Sends tried so far"),
                         "last error": st.column_config.TextColumn(width="large"),
                         "alert": st.column_config.TextColumn(help="The alert's fingerprint; none for a test"),
                     })
    else:
        st.info("No notification matches these filters.")
    st.caption(f"{len(rows)} row(s), newest first, at most {limit} · updated {now:%H:%M:%S} UTC · "
               f"refreshes every {REFRESH_S} s")


with data.reading(page=True) as db_session:
    names = alerting_reads.channel_names(db_session)

st.subheader("Channels")
channels = data.fetch_or_none(api.alert_channels, page=True) if CAN_LIST else None
if not CAN_LIST:
    st.info(f"Channels hold secrets: listing them needs the operator role, changing them the admin role; you are "
            f"logged in as {session.who()}. The delivery log below is open to every role.")
elif channels is not None:
    if channels:
        st.dataframe(notifications.channel_table(channels), hide_index=True, key="channels-table",
                     column_config={
                         "id": st.column_config.NumberColumn(width=40),
                         "config": st.column_config.TextColumn(width="large", help="Secrets are masked by the API"),
                         "created": st.column_config.DatetimeColumn("created (UTC)", format="YYYY-MM-DD HH:mm"),
                     })
    else:
        st.info("No channel yet: create one below, then pick it in an alert rule.")
    tabs = st.tabs(["New channel", "Edit", "Delete", "Send test"])
    with tabs[0]:
        new_channel_form()
    for tab, form in zip(tabs[1:], (edit_channel_form, delete_channel_form, test_form), strict=True):
        with tab:
            if channels:
                form(channels)
            else:
                st.info("No channel yet.")

st.subheader("Delivery log")
f1, f2, f3 = st.columns([2, 3, 1])
channel_pick = f1.selectbox("Channel", [None, *names], key="dl-channel",
                            format_func=lambda i: ANY if i is None else names[i].label())
status_pick = f2.multiselect("Status", list(DeliveryStatus), key="dl-status", format_func=lambda s: s.value,
                             placeholder="any")
limit_pick = f3.selectbox("Rows", ROW_LIMITS, index=ROW_LIMITS.index(100), key="dl-limit")
live_log(channel_pick, list(status_pick), int(limit_pick or 100))
