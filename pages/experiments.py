"""Experiments: write an experiment (load stages, faults and scaling, thresholds, steady-state probes) in a form or as
raw JSON, save and run it (operators), follow a run live, read its verdict and report, compare two runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import streamlit as st

from contract.experiments import ExperimentDocument, ExperimentOut, ExperimentRunDetailOut, ExperimentRunOut
from db import queries
from ui import api, data, login, session
from ui import experiment_form as ef
from ui import experiments as ex
from ui.experiment_editor import starter
from ui.experiments_client import HTML, JSON
from ui.format import NA, fmt_count, fmt_ms, fmt_seconds
from ui.session import Role

RUNNING_REFRESH_S = 1
NEW = 0  # the picker's "New experiment"
PICK, PICK_NEXT, RUN, RUN_NEXT = "ex-pick", "ex-pick-next", "ex-run", "ex-run-next"
HISTORY_LIMIT = 50

login.require_login()
CAN_ACT = session.can(Role.OPERATOR)
ACT_HELP = session.needs(Role.OPERATOR)
st.title("Experiments")
data.show_flash()
st.caption("An experiment is a load with stages, faults and scaling at set offsets, thresholds judged while it runs "
           "(k6-style, with abortOnFail) and steady-state probes before and after. Every figure is measured by the "
           "engine; a threshold shows n/a until something was measured for it.")


def client() -> api.ApiClient:
    """The API client of the logged-in session."""
    return api.default_client()


def pick_label(experiments: dict[int, ExperimentOut]) -> Any:
    """The picker's label of an experiment id (0: a new one)."""
    return lambda i: "New experiment" if i == NEW else f"{experiments[i].name} (v{experiments[i].version})"


def starter_for(services: list[str]) -> dict[str, Any]:
    """The starter document, on orders when the fleet has it, else on the first service."""
    return starter("orders" if "orders" in services or not services else services[0])


def save() -> ExperimentOut:
    """POST (new) or PUT (stored) the document; the picker moves to the saved experiment."""
    editing = ef.editing() or NEW
    doc = ef.document()
    saved = client().create_experiment(doc) if editing == NEW else client().update_experiment(editing, doc)
    st.session_state[ef.EDITING] = saved.id
    st.session_state[PICK_NEXT] = saved.id
    return saved


def save_and_run(stored: ExperimentOut | None) -> ExperimentRunOut:
    """Save the document when it changed (or is new), then start a run; the run selector moves to it."""
    unchanged = stored is not None and ExperimentDocument.model_validate(ef.document()) == stored.document
    saved_id = stored.id if stored is not None and unchanged else save().id
    run = client().run_experiment(saved_id)
    st.session_state[RUN_NEXT] = run.id
    return run


def editor(services: list[str], stored: ExperimentOut | None) -> None:
    """The form and the raw document side by side, what is wrong with it, Save and Run."""
    left, right = st.columns([3, 2])
    with left:
        ef.form(services, disabled=not CAN_ACT)
    with right:
        ef.raw_editor(disabled=not CAN_ACT)
    wrong = ef.shown_problems()
    if wrong:
        st.error("The document is not valid:\n" + "\n".join(f"- `{line}`" for line in wrong))
    else:
        st.success("The document is valid. The engine checks the fleet (services, managed ones to scale) when "
                   "it is saved or run.", icon=":material/check:")
    blocked = ACT_HELP or ("Fix the document first." if wrong else None)
    buttons = st.columns([1, 1, 4])
    if buttons[0].button("Save", key="ex-save", icon=":material/save:", disabled=bool(blocked), help=blocked,
                         width="stretch"):
        data.act(save, lambda r: f"Experiment {r.name} saved as version {r.version}.")
    if buttons[1].button("Run", key="ex-run-start", type="primary", icon=":material/play_arrow:",
                         disabled=bool(blocked), width="stretch",
                         help=blocked or "Saves the document when it changed, then runs it."):
        data.act(lambda: save_and_run(stored), lambda r: f"Run #{r.id} of {r.experimentName} v{r.version} started.")


def show_verdict(run: ExperimentRunOut) -> None:
    """Pass or fail with the reason, once the run has a verdict."""
    if run.verdict is None:
        if run.status != "running":
            st.warning(f"Run #{run.id} {run.status} without a verdict: {run.reason or 'nothing was measured'}.")
        return
    colour = "green" if run.verdict == "pass" else "red"  # a result, not an error of the page: no error box
    st.markdown(f"#### :{colour}-background[{ex.verdict_label(run)}] run #{run.id} {run.status.value}"
                + (f": {run.reason}" if run.reason else ""))


def show_reports(run: ExperimentRunOut) -> None:
    """Download buttons for the run's HTML and JSON reports (fetched when pressed)."""
    c = client()
    left, right, _ = st.columns([1, 1, 3])
    left.download_button("HTML report", lambda: c.experiment_report(run.id, HTML), key="ex-report-html",
                         file_name=f"experiment-run-{run.id}.html", mime=HTML, on_click="ignore",
                         icon=":material/download:", width="stretch")
    right.download_button("JSON report", lambda: c.experiment_report(run.id, JSON), key="ex-report-json",
                          file_name=f"experiment-run-{run.id}.json", mime=JSON, on_click="ignore",
                          icon=":material/download:", width="stretch")


def show_figures(run: ExperimentRunDetailOut) -> None:
    """Status, phase, verdict, elapsed, load seconds and totals."""
    sent = sum(s.sent for s in run.seconds)
    a, b, c, d = st.columns(4)
    with a.container(key="ex-status"):  # smaller type: "interrupted" and its emoji fit a quarter of the page
        st.metric("Status", ex.status_label(run.status), border=True)
    b.metric("Phase", run.phase.value, border=True)
    c.metric("Verdict", ex.verdict_label(run), border=True)
    d.metric("Elapsed", fmt_seconds(ex.elapsed_s(run, datetime.now(UTC))), border=True,
             help="From the start of the run (steady state before the load included)")
    e, f, g, h = st.columns(4)
    e.metric("Load", f"{len(run.seconds)} of {run.document.load.duration_s:g} s", border=True,
             help="Seconds of load measured, of the stages' total")
    f.metric("Sent", fmt_count(sent) if run.seconds else NA, border=True)
    g.metric("Failed", fmt_count(sum(s.failed for s in run.seconds)) if run.seconds else NA, border=True)
    last_p95 = next((s.p95 for s in reversed(run.seconds) if s.p95 is not None), None)
    h.metric("p95 last second", fmt_ms(last_p95), border=True, help="Corrected, of the last second with answers")


def show_thresholds(run: ExperimentRunDetailOut) -> None:
    """Each threshold as a row, green when it holds, red when it failed, n/a until evaluated; then the probes."""
    if run.thresholds:
        frame = ex.threshold_frame(run.thresholds)
        st.dataframe(frame.style.map(ex.result_style, subset=["result"]), hide_index=True, placeholder=NA,
                     key="ex-thresholds", column_config={
                         "figure": st.column_config.NumberColumn(format="%.2f", help="The run's, or worst window's"),
                         "failed at s": st.column_config.NumberColumn(format="%.0f")})
    else:
        st.info("This experiment has no thresholds.")
    if run.steadyState:
        st.dataframe([{"phase": p.phase, "probe": p.kind.value, "service": p.service, "result": ex.outcome(p.ok),
                       "p95 ms": p.figure, "detail": p.detail} for p in run.steadyState],
                     hide_index=True, placeholder=NA, key="ex-probes")


def show_run(run_id: int, known: str) -> None:
    """The chosen run, live from the engine while it runs: figures, charts, thresholds, events, Stop."""
    run = data.fetch_quietly(lambda: client().experiment_run(run_id))
    if run is None:
        st.warning(f"Run #{run_id} cannot be read from the API now; trying again on the next refresh.")
        return
    if run.status.value != known:
        st.rerun()  # it ended (or began): the history, the verdict and the refresh rate change
    if run.status == "running":
        left, right = st.columns([4, 1], vertical_alignment="center")
        total = run.document.load.duration_s
        left.progress(min(1.0, len(run.seconds) / total) if total else 0.0,
                      text=f"Run #{run.id} · {run.phase.value} · {len(run.seconds)} of {total:g} s of load")
        if right.button(f"Stop #{run.id}", key="ex-stop", icon=":material/stop:", type="primary",
                        disabled=not CAN_ACT, help=ACT_HELP or "End the run now", width="stretch"):
            data.act(lambda: client().stop_experiment_run(run.id), lambda r: f"Run #{r.id} {r.status}.", toast=True)
    show_verdict(run)
    show_figures(run)
    left, right = st.columns(2)
    left.plotly_chart(ex.rate_chart(run), key="ex-rate-chart")
    latency = ex.latency_chart(run)
    if latency is None:
        right.info("No latency yet: no request has been answered.")
    else:
        right.plotly_chart(latency, key="ex-latency-chart")
    show_thresholds(run)
    st.markdown("**Events**")
    if run.events:
        st.dataframe(ex.event_frame(run.events), hide_index=True, key="ex-events",
                     column_config={"at s": st.column_config.NumberColumn(format="%.1f",
                                                                          help="Seconds from the start of the load")})
    else:
        st.info("No events yet.")
    if run.status != "running":
        show_reports(run)
    st.caption(f"Run #{run.id} · {run.experimentName} v{run.version}" +
               (f" · refreshes every {RUNNING_REFRESH_S} s" if run.status == "running" else ""))


def compare(runs: dict[int, ExperimentRunOut]) -> None:
    """Two runs of the experiment threshold by threshold (GET …/compare), and the HTML report with the comparison."""
    ids = list(runs)
    if len(ids) < 2:
        st.info("Two runs are needed to compare.")
        return
    left, right = st.columns(2)
    a = left.selectbox("Run A", ids, index=1, key="ex-compare-a", format_func=lambda i: ex.run_label(runs[i]))
    b = right.selectbox("Run B", ids, index=0, key="ex-compare-b", format_func=lambda i: ex.run_label(runs[i]))
    if a is None or b is None or a == b:
        st.info("Pick two different runs.")
        return
    result = data.fetch_or_none(lambda: client().compare_experiment_runs(a, b))
    if result is None:
        return
    st.dataframe(ex.comparison_frame(result), hide_index=True, placeholder=NA, key="ex-compare")
    c = client()
    st.download_button("HTML report of B compared with A", lambda: c.experiment_report(b, HTML, compare=a),
                       key="ex-compare-report", file_name=f"experiment-run-{b}-vs-{a}.html", mime=HTML,
                       on_click="ignore", icon=":material/download:")


with data.reading(page=True) as db_session:
    services = [s.name for s in queries.service_briefs(db_session)]
# without the API the editor still drafts a new experiment (the page runs again once the API answers)
experiments = {e.id: e for e in data.fetch_or_none(lambda: client().experiments(), page=True) or []}

if (pending := st.session_state.pop(PICK_NEXT, None)) is not None:
    st.session_state[PICK] = pending
if st.session_state.get(PICK) not in (NEW, *experiments):
    st.session_state[PICK] = next(iter(experiments), NEW)
chosen = st.selectbox("Experiment", [NEW, *experiments], key=PICK, format_func=pick_label(experiments))
chosen = NEW if chosen is None else chosen
if ef.editing() != chosen:
    ef.load(starter_for(services) if chosen == NEW else
            experiments[chosen].document.model_dump(mode="json", exclude_none=True), chosen)
stored = experiments.get(chosen)
editor(services, stored)

if stored is None:
    st.stop()
stored_id = stored.id
runs = {r.id: r for r in data.fetch_or_none(
    lambda: client().experiment_runs(experiment_id=stored_id, limit=HISTORY_LIMIT)) or []}
st.subheader("Run")
if not runs:
    st.info("No run of this experiment yet. Press Run above.")
    st.stop()
if (pending_run := st.session_state.pop(RUN_NEXT, None)) is not None and pending_run in runs:
    st.session_state[RUN] = pending_run
if st.session_state.get(RUN) not in runs:
    st.session_state[RUN] = next(iter(runs))
run_id = st.selectbox("Run", list(runs), key=RUN, format_func=lambda i: ex.run_label(runs[i]))
if run_id is not None:
    status = runs[run_id].status.value
    st.fragment(run_every=RUNNING_REFRESH_S if status == "running" else None)(show_run)(run_id, status)

st.subheader("History")
st.dataframe(ex.history_frame(list(runs.values())), hide_index=True, placeholder=NA, key="ex-history",
             column_config={"started": st.column_config.DatetimeColumn("started (UTC)", format="MM-DD HH:mm:ss"),
                            "ended": st.column_config.DatetimeColumn("ended (UTC)", format="MM-DD HH:mm:ss")})

st.subheader("Compare two runs")
compare(runs)
