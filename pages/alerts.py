"""Alerts: the firing, pending and silenced alerts now (live), the rules that raise them (create, edit, delete) and
the silences that keep them quiet (create, expire); actions through the API (operators)."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from contract.alerting import (
    TRAFFIC_KINDS,
    TRAFFIC_WINDOW_MAX_S,
    AlertKind,
    AlertRuleOut,
    Severity,
    SilenceOut,
    SilenceState,
)
from db import alerting_reads, queries
from ui import alerting, api, data, login, session
from ui.alerting import EVERY_SERVICE, KINDS, RULE_LABELS, SILENCE_LABELS
from ui.format import NA
from ui.session import Role

REFRESH_S = 5
ANY = "any"
MAX_SILENCE_MIN = 7 * 24 * 60
NEW = "rule-new"
WINDOW_MAXIMA = (TRAFFIC_WINDOW_MAX_S, 86_400)  # a window input per maximum, so a kind's bound never clips another's
SILENCE_KEYS = ("silence-service", "silence-rule", "silence-minutes", "silence-comment")

login.require_login()
CAN_ACT = session.can(Role.OPERATOR)
ACT_HELP = session.needs(Role.OPERATOR)
st.title("Alerts")
data.show_flash()


@st.fragment(run_every=REFRESH_S)
def live_alerts(rule_count: int) -> None:
    """The alerts not resolved, firing first, tinted by state; the counts above them."""
    with data.reading() as db_session:
        alerts = alerting_reads.alerts_now(db_session)
    counts = alerting.alert_counts(alerts)
    cols = st.columns(4)
    cols[0].metric("Firing", counts["firing"], border=True,
                   help="Alerts whose condition has held for the rule's 'for' time: notified.")
    cols[1].metric("Pending", counts["pending"], border=True,
                   help="Alerts whose condition holds, for less than the rule's 'for' time so far.")
    cols[2].metric("Silenced", counts["silenced"], border=True,
                   help="Firing or pending alerts a silence matches: shown here, not notified.")
    cols[3].metric("Rules", rule_count, border=True, help="Alert rules evaluated by the engine.")
    if alerts:
        st.dataframe(alerting.state_colours(alerting.alert_table(alerts)), hide_index=True, key="alerts-table",
                     placeholder=NA, column_config={
                         "since": st.column_config.DatetimeColumn(
                             "since (UTC)", format="YYYY-MM-DD HH:mm:ss", help="When the condition began to hold"),
                         "value vs threshold": st.column_config.TextColumn(
                             help="The measured figure the rule compared, against its threshold"),
                         "silenced": st.column_config.CheckboxColumn(help="A silence matches: not notified"),
                         "summary": st.column_config.TextColumn(width="large"),
                     })
    else:
        st.success("No alert is firing or pending.", icon=":material/check_circle:")
    st.caption(f"Updated {datetime.now(UTC):%H:%M:%S} UTC · refreshes every {REFRESH_S} s")


def kind_picker(key: str, current: AlertKind | None = None) -> AlertKind:
    """The rule's kind, outside the form so the fields below follow it."""
    kinds = list(KINDS)
    kind = st.selectbox("Kind", kinds, index=kinds.index(current) if current else 0, key=key,
                        format_func=lambda k: KINDS[k].label,
                        help="What the rule watches; the threshold's unit and the window follow from it.")
    st.caption(f"Fires when {KINDS[kind].watches}.")
    return kind


def rule_fields(prefix: str, kind: AlertKind, rule: AlertRuleOut | None, services: list[str],
                channels: dict[int, alerting_reads.ChannelName]) -> dict[str, object]:
    """The rule form's fields (inside a st.form), prefilled from `rule`; the request body they make."""
    info = KINDS[kind]
    name = st.text_input("Name", value=rule.name if rule else "", key=f"{prefix}-name", max_chars=100,
                         help="Unique; letters, digits, '.', '_' or '-'.")
    c1, c2 = st.columns(2)
    options = [EVERY_SERVICE, *services]
    current = rule.service if rule and rule.service in services else EVERY_SERVICE
    service = c1.selectbox("Service", options, index=options.index(current), key=f"{prefix}-service",
                           disabled=not info.per_service,
                           help="The service it watches; every service gives one alert per service." if info.per_service
                           else "This kind watches the monitor itself, no service.")
    threshold_default = rule.threshold if rule and rule.kind is kind else info.default_threshold
    threshold = c2.number_input(
        f"Threshold ({info.unit})" if info.unit else "Threshold", min_value=0.0, max_value=1e9,
        value=threshold_default, step=1.0, format="%g", key=f"{prefix}-threshold-{kind.value}",
        disabled=info.unit is None, placeholder="14.4" if kind is AlertKind.SLO_BURN else "none",
        help=info.threshold_help or "Not used by this kind.")
    c3, c4, c5 = st.columns(3)
    most = WINDOW_MAXIMA[0] if kind in TRAFFIC_KINDS else WINDOW_MAXIMA[1]  # an hour of routed traffic is kept
    window = c3.number_input("Window (s)", 5, most, min(rule.windowSeconds if rule else 300, most), 5,
                             key=f"{prefix}-window-{most}", disabled=info.window_help is None,
                             help=f"{info.window_help} 5 to {most:,} s." if info.window_help
                             else "Not used by this kind.")
    for_s = c4.number_input("For (s)", 0, 86_400, rule.forSeconds if rule else 0, 5, key=f"{prefix}-for",
                            help="Seconds the condition must hold before the alert fires (pending until then); "
                                 "0 fires at once.")
    repeat = c5.number_input("Repeat every (s)", 10, 7 * 86_400, rule.repeatSeconds if rule else None, 60,
                             key=f"{prefix}-repeat", placeholder="never",
                             help="Notify again every this many seconds while it fires; empty = once.")
    severities = [s.value for s in Severity]
    severity = st.radio("Severity", severities, horizontal=True, key=f"{prefix}-severity",
                        index=severities.index(rule.severity if rule else Severity.WARNING),
                        help="critical also opens an incident (see the Incidents page).")
    chosen = st.multiselect("Channels", list(channels), default=[c for c in (rule.channels if rule else [])
                                                                   if c in channels],
                            key=f"{prefix}-channels", format_func=lambda c: channels[c].label(),
                            placeholder="none: shown here, not notified",
                            help="Where its notifications go (see the Notifications page).")
    return alerting.rule_body(name=name, kind=kind, service=service, threshold=threshold, window_s=int(window),
                              for_s=int(for_s), severity=severity or Severity.WARNING.value, channels=chosen,
                              repeat_s=None if repeat is None else int(repeat))


def new_rule_form(services: list[str], channels: dict[int, alerting_reads.ChannelName]) -> None:
    """POST /api/alert-rules; cleared on success, kept as typed on an error."""
    kind = kind_picker(f"{NEW}-kind")
    with st.form("rule-new", border=False):
        body = rule_fields(NEW, kind, None, services, channels)
        go = st.form_submit_button("Create rule", type="primary", key=f"{NEW}-submit", disabled=not CAN_ACT,
                                   help=ACT_HELP)
    if go:
        reset = [f"{NEW}-{f}" for f in ("name", "service", "for", "repeat", "severity", "channels")]
        reset += [f"{NEW}-threshold-{k.value}" for k in KINDS] + [f"{NEW}-window-{n}" for n in WINDOW_MAXIMA]
        data.act(lambda: api.create_alert_rule(body), lambda r: f"Rule {r.name} created.", reset=reset,
                 labels=RULE_LABELS)


def edit_rule_form(rules: list[AlertRuleOut], services: list[str],
                   channels: dict[int, alerting_reads.ChannelName]) -> None:
    """PUT /api/alert-rules/<id> with the whole rule."""
    by_id = {r.id: r for r in rules}
    chosen = st.selectbox("Rule", list(by_id), format_func=lambda i: by_id[i].name, key="rule-edit-pick")
    if chosen is None:
        return
    rule = by_id[chosen]
    prefix = f"rule-edit-{rule.id}"
    kind = kind_picker(f"{prefix}-kind", rule.kind)
    with st.form(prefix, border=False):
        body = rule_fields(prefix, kind, rule, services, channels)
        go = st.form_submit_button("Save rule", type="primary", key=f"{prefix}-submit", disabled=not CAN_ACT,
                                   help=ACT_HELP)
    if go:
        data.act(lambda: api.update_alert_rule(rule.id, body), lambda r: f"Rule {r.name} saved.",
                 labels=RULE_LABELS)


def delete_rule_form(rules: list[AlertRuleOut]) -> None:
    """DELETE /api/alert-rules/<id> after an explicit confirmation."""
    data.delete_form("rule", "rule", {r.id: r.name for r in rules},
                     "Its alerts end with it; silences naming it stay until they expire.", api.delete_alert_rule,
                     disabled=not CAN_ACT, why=ACT_HELP)


def new_silence_form(services: list[str], rules: list[AlertRuleOut]) -> None:
    """POST /api/silences from now for N minutes; a service, a rule or both."""
    names = {r.id: r.name for r in rules}
    with st.form("silence-new", border=False):
        c1, c2, c3 = st.columns([2, 2, 1])
        service = c1.selectbox("Service", [ANY, *services], key="silence-service",
                               help="Silence this service's alerts; 'any' with a rule silences the rule everywhere.")
        rule = c2.selectbox("Rule", [None, *names], key="silence-rule",
                            format_func=lambda r: ANY if r is None else names[r],
                            help="Silence this rule's alerts; with a service, only on that service.")
        minutes = c3.number_input("Ends in (min)", 1, MAX_SILENCE_MIN, 60, 15, key="silence-minutes",
                                  help="It starts now and ends this many minutes from now.")
        comment = st.text_input("Comment", key="silence-comment", max_chars=500,
                                placeholder="why, e.g. planned maintenance of payments",
                                help="Required: what the silence is for (shown with it).")
        go = st.form_submit_button("Create silence", type="primary", key="silence-submit", disabled=not CAN_ACT,
                                   help=ACT_HELP)
    if go:
        body = alerting.silence_body(service=None if service == ANY else service, rule=rule,
                                     minutes=float(minutes), comment=comment, now=datetime.now(UTC))
        data.act(lambda: api.create_silence(body), lambda r: f"Silence #{r.id} created, {r.state}.",
                 reset=SILENCE_KEYS, labels=SILENCE_LABELS)


def expire_form(silences: list[SilenceOut]) -> None:
    """DELETE /api/silences/<id>: it ends now and stays listed."""
    live = {s.id: s for s in silences if s.state is not SilenceState.EXPIRED}
    if not live:
        st.caption("No silence in effect or to come.")
        return
    c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
    chosen = c1.selectbox("Silence", list(live), key="silence-expire-pick",
                          format_func=lambda i: f"#{i} · {live[i].service or ANY} · {live[i].comment[:60]}")
    if c2.button("Expire now", key="silence-expire", disabled=not CAN_ACT or chosen is None, width="stretch",
                 help=ACT_HELP or "End it now; matching alerts are notified again") and chosen is not None:
        data.act(lambda: api.expire_silence(chosen), lambda r: f"Silence #{r.id} expired.")


with data.reading(page=True) as db_session:
    service_names = [s.name for s in queries.service_briefs(db_session)]
    rules = alerting_reads.alert_rules(db_session)
    channels = alerting_reads.channel_names(db_session)
    silences = alerting_reads.silences(db_session, datetime.now(UTC))

live_alerts(len(rules))

in_effect = sum(s.state is not SilenceState.EXPIRED for s in silences)
rules_tab, silences_tab = st.tabs([f"Rules ({len(rules)})", f"Silences ({in_effect} in effect or to come)"])
with rules_tab:
    if rules:
        st.dataframe(alerting.rule_table(rules, {i: c.name for i, c in channels.items()}), hide_index=True,
                     key="rules-table", column_config={"id": st.column_config.NumberColumn(width=40)})
    else:
        st.info("No alert rule yet: create one below.")
    new_tab, edit_tab, delete_tab = st.tabs(["New rule", "Edit", "Delete"])
    with new_tab:
        new_rule_form(service_names, channels)
    with edit_tab:
        if rules:
            edit_rule_form(rules, service_names, channels)
        else:
            st.info("No rule to edit.")
    with delete_tab:
        if rules:
            delete_rule_form(rules)
        else:
            st.info("No rule to delete.")
with silences_tab:
    if silences:
        st.dataframe(alerting.silence_table(silences, {r.id: r.name for r in rules}), hide_index=True,
                     key="silences-table", placeholder=NA, column_config={
                         "id": st.column_config.NumberColumn(width=40),
                         "starts": st.column_config.DatetimeColumn("starts (UTC)", format="YYYY-MM-DD HH:mm"),
                         "ends": st.column_config.DatetimeColumn("ends (UTC)", format="YYYY-MM-DD HH:mm"),
                         "comment": st.column_config.TextColumn(width="large"),
                     })
        st.caption("In effect or to come, then those ended in the last 7 days.")
    else:
        st.info("No silence in effect, to come or ended in the last 7 days.")
    st.markdown("**New silence**")
    new_silence_form(service_names, rules)
    st.markdown("**Expire a silence**")
    expire_form(silences)
