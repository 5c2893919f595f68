"""Incidents: the list (newest first, live), MTTA and MTTR per service over a window, and one incident's timeline
of every event that overlapped it, with acknowledge and a note (operators)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import streamlit as st

from contract.incidents import IncidentDetailOut, IncidentOut, IncidentStatus
from db import alerting_reads, queries
from db import incidents as incident_queries
from ui import api, data, incidents, login, session
from ui.format import NA
from ui.session import Role

REFRESH_S = 10
ANY = "any"
LIST_LIMIT = 200
WINDOWS_D = (1, 7, 30, 90)
ACK_LABELS = {"note": "Note"}
STATS_SERVICES = 20  # services with their own MTTA / MTTR row at most (one call each)

login.require_login()
CAN_ACT = session.can(Role.OPERATOR)
ACT_HELP = session.needs(Role.OPERATOR)
st.title("Incidents")
data.show_flash()
st.caption("A critical alert opens an incident for its service; it resolves when all its alerts have. Its timeline "
           "holds every event that overlapped it, including the failures, load and scaling this monitor caused "
           "itself: an incident of a failure simulation started with silence is marked expected.")


def show_stats(window_d: int, service: str | None) -> None:
    """Incidents, mean time to acknowledge and to resolve over the window (db.incidents.stats, the figures
    GET /api/incidents/stats answers): for the chosen service (or all), and per service with an incident in it."""
    since = datetime.now(UTC) - timedelta(days=window_d)
    with data.reading(page=True) as db_session:
        overall = incident_queries.stats(db_session, since, service)
        names = [service] if service else sorted(
            {i.service for i in alerting_reads.incidents(db_session, limit=LIST_LIMIT)
             if i.service and datetime.fromisoformat(i.startedAt) >= since})
        per_service = [(n, incident_queries.stats(db_session, since, n)) for n in names[:STATS_SERVICES]]
    scope = service or "all services"
    cols = st.columns(3)
    cols[0].metric(f"Incidents, last {window_d} d", overall.incidents, border=True,
                   help=f"Incidents of {scope} that started in the window.")
    cols[1].metric("MTTA", incidents.fmt_seconds_long(overall.mtta_s), border=True,
                   help=f"Mean time from an incident's start to its acknowledgement ({scope}, the acknowledged "
                        "ones that started in the window).")
    cols[2].metric("MTTR", incidents.fmt_seconds_long(overall.mttr_s), border=True,
                   help=f"Mean time from an incident's start to its resolution ({scope}, the resolved ones that "
                        "started in the window).")
    if per_service and service is None:
        st.dataframe(incidents.stats_table([(n, f.incidents, f.mtta_s, f.mttr_s) for n, f in per_service]),
                     hide_index=True, key="incident-stats")


@st.fragment(run_every=REFRESH_S)
def live_list(status: IncidentStatus | None, service: str | None) -> None:
    """The incidents, newest first, with the open ones counted."""
    now = datetime.now(UTC)
    with data.reading() as db_session:
        rows = alerting_reads.incidents(db_session, status, service, LIST_LIMIT)
    open_now = [i for i in rows if i.status is IncidentStatus.OPEN]
    cols = st.columns(2)
    cols[0].metric("Open", len(open_now), border=True, help="Incidents whose alerts still fire (in this list).")
    cols[1].metric("Open, not acknowledged", sum(i.acknowledgedAt is None for i in open_now), border=True,
                   help="Open incidents nobody has acknowledged yet.")
    if not rows:
        st.info("No incident matches these filters.")
        return
    st.dataframe(incidents.incident_table(rows, now), hide_index=True, key="incidents-table", placeholder=NA,
                 column_config={
                     "started": st.column_config.DatetimeColumn("started (UTC)", format="YYYY-MM-DD HH:mm:ss"),
                     "title": st.column_config.TextColumn(width="medium"),
                     "expected": st.column_config.TextColumn(
                         help="Caused on purpose: a failure simulation started with silence"),
                     "latest note": st.column_config.TextColumn(width="large"),
                 })
    st.caption(f"{len(rows)} incident(s), newest first, at most {LIST_LIMIT} · updated {now:%H:%M:%S} UTC · "
               f"refreshes every {REFRESH_S} s")


def acknowledge_form(i: IncidentDetailOut) -> None:
    """POST /api/incidents/<id>/acknowledge with a note: the first one acknowledges, each one with a note adds it;
    the note is kept on an error, cleared on success."""
    first = i.acknowledgedAt is None
    if i.acknowledgedAt is not None:
        st.caption(f"Acknowledged {i.acknowledgedAt[:19].replace('T', ' ')} UTC by {i.acknowledgedBy or NA}; a note "
                   "added here goes on its timeline.")
    key = f"ack-note-{i.id}"
    with st.form(f"ack-{i.id}", border=False):
        note = st.text_area("Note", key=key, max_chars=2000, placeholder="what you know or are doing",
                            help="Up to 2,000 characters, kept on the incident's timeline; the latest note is also "
                                 "shown on the public status page. Optional when acknowledging.")
        go = st.form_submit_button("Acknowledge" if first else "Add note", type="primary", key=f"ack-submit-{i.id}",
                                   disabled=not CAN_ACT,
                                   help=ACT_HELP or ("Say that someone is on it; MTTA counts up to this moment."
                                                     if first else "Add the note to the timeline."))
    if go:
        if not first and not note.strip():
            st.warning("Write a note to add.")
            return
        data.act(lambda: api.acknowledge_incident(i.id, note.strip()),
                 lambda r: f"Incident {r.title}: " + ("acknowledged." if first else "note added."),
                 reset=[key], labels=ACK_LABELS)


def show_incident(incident_id: str) -> None:
    """One incident (GET /api/incidents/<id>): its header, timeline chart, events and the acknowledge form."""
    i = data.fetch_or_none(lambda: api.incident(incident_id), page=True)
    if i is None:
        return
    now = datetime.now(UTC)
    head = st.columns([4, 1])
    took = incidents.fmt_seconds_long(incidents.duration_s(i, now))
    state = f"open for {took}" if i.resolvedAt is None else f"resolved after {took}"
    head[0].markdown(f"**{i.title}** · {i.service or 'the monitor'} · {i.severity.value} · "
                     f"{incidents.INCIDENT_EMOJI.get(i.status, '')} {state}")
    if i.expected:
        with head[1]:
            st.badge("expected", icon=":material/science:", color="violet")
    fig = incidents.timeline_figure(i, now)
    if fig is None:
        st.info("No event recorded on this incident's timeline yet.")
    else:
        st.plotly_chart(fig, key="incident-timeline")
        if i.timelineTruncated:
            st.caption("A source had more events than a timeline shows: the oldest of each are shown.")
        st.dataframe(incidents.event_table(i.timeline), hide_index=True, key="incident-events", placeholder="",
                     column_config={
                         "at": st.column_config.DatetimeColumn("at (UTC)", format="YYYY-MM-DD HH:mm:ss.SSS"),
                         "until": st.column_config.DatetimeColumn("until (UTC)", format="HH:mm:ss",
                                                                  help="The end of a span (a simulation, a load test)"),
                         "event": st.column_config.TextColumn(width="large"),
                         "detail": st.column_config.TextColumn(width="large"),
                     })
    acknowledge_form(i)


with data.reading(page=True) as db_session:
    service_names = [s.name for s in queries.service_briefs(db_session)]
    listed: list[IncidentOut] = alerting_reads.incidents(db_session, limit=LIST_LIMIT)

c1, c2, c3 = st.columns(3)
status_pick = c1.selectbox("Status", [ANY, *(s.value for s in IncidentStatus)], key="inc-status")
service_pick = c2.selectbox("Service", [ANY, *service_names], key="inc-service")
window = c3.selectbox("MTTA / MTTR window", WINDOWS_D, index=WINDOWS_D.index(30), key="inc-window",
                      format_func=lambda d: f"last {d} day{'s' if d > 1 else ''}",
                      help="Incidents that started in this window count towards MTTA and MTTR.")
chosen_status = None if status_pick == ANY else IncidentStatus(status_pick)
chosen_service = None if service_pick == ANY else service_pick

show_stats(window, chosen_service)
st.subheader("Incidents")
live_list(chosen_status, chosen_service)

st.subheader("One incident")
shown = [i for i in listed if (chosen_status is None or i.status is chosen_status)
         and (chosen_service is None or i.service == chosen_service)]
if not shown:
    st.info("No incident to show.")
else:
    by_id = {i.id: i for i in shown}
    picked = st.selectbox("Incident", list(by_id), key="inc-pick", format_func=lambda k: incidents.incident_label(
        by_id[k]), help="Newest first.")
    if picked is not None:
        show_incident(picked)
