"""The experiment editor's widgets: a form and the raw JSON document side by side, kept in step.

The document being edited lives in session state (DOC), valid or not. The form's widgets are keyed by a generation:
putting a document in the editor (a stored experiment, the starter, a change of the raw text) starts a new
generation, whose widgets start from that document. A change in the form is written into the document and the raw
text; a change of the raw text that parses as JSON becomes the document and redraws the form from it.
"""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from contract.chaos import Intensity
from contract.experiments import ProbeKind, ThresholdMetric, ThresholdOp
from ui.experiment_editor import STEP_KINDS, FormParts, apply_form, dump, form_parts, problems

__all__ = ["DOC", "EDITING", "METHODS", "RAW", "document", "editing", "form", "load", "raw_editor", "shown_problems"]

DOC, GEN, BASE, LAST, RAW, RAW_ERROR, EDITING = (
    "ex-doc", "ex-gen", "ex-base", "ex-last", "ex-raw", "ex-raw-error", "ex-editing")
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


def load(doc: Any, experiment_id: int) -> None:
    """Put a document in the editor (experiment_id 0: a new one): the form and the raw text start from it."""
    st.session_state[DOC] = doc
    st.session_state[GEN] = st.session_state.get(GEN, 0) + 1
    st.session_state[RAW] = dump(doc)
    st.session_state.pop(RAW_ERROR, None)
    st.session_state[EDITING] = experiment_id


def document() -> Any:
    """The document being edited, as the form and the raw text last left it."""
    return st.session_state.get(DOC)


def editing() -> int | None:
    """The stored experiment being edited: its id, 0 for a new one, None before anything is loaded."""
    value = st.session_state.get(EDITING)
    return value if isinstance(value, int) else None


def _raw_changed() -> None:
    """The raw text was edited: when it parses, it becomes the document and the form is redrawn from it."""
    text = st.session_state.get(RAW, "")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        st.session_state[RAW_ERROR] = f"not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        return
    st.session_state.pop(RAW_ERROR, None)
    st.session_state[DOC] = doc
    st.session_state[GEN] = st.session_state.get(GEN, 0) + 1


def _select(options: list[str], current: str | None) -> tuple[list[str], int | None]:
    """Options with the current value among them (a value outside them is shown, and the contract names it)."""
    if current is not None and current not in options:
        options = [*options, current]
    return options, None if current is None else options.index(current)


def form(services: list[str], disabled: bool) -> None:
    """The form over the document; a change is written into the document and the raw text (draw it before
    raw_editor, which shows the text this sets)."""
    gen = st.session_state.get(GEN, 0)
    base_gen, base = st.session_state.get(BASE, (None, None))
    if base_gen != gen:  # the widgets of a generation start from the same values on every run
        base = st.session_state.get(DOC)
        st.session_state[BASE] = (gen, base)
    p = form_parts(base)

    def k(name: str) -> str:
        return f"ex-{gen}-{name}"

    top = st.columns([2, 2])
    name = top[0].text_input("Name", p.name, key=k("name"), disabled=disabled, help="Unique among experiments.")
    options, index = _select(services, p.service)
    service = top[1].selectbox("Target service", options, index=index, key=k("service"), disabled=disabled,
                               placeholder="pick a registered service",
                               help="Requests go through the engine's router, as a load test's do.")
    description = st.text_input("Description", p.description, key=k("description"), disabled=disabled)
    rates = st.columns(2)
    start_rps = rates[0].number_input("Start rate (req/s)", value=p.start_rps, key=k("start"), disabled=disabled,
                                      format="%g", help="The rate the first stage ramps from.")
    users = rates[1].number_input("Users", value=p.users, step=1, key=k("users"), disabled=disabled,
                                  help="At most this many requests in flight; a request due while all are busy "
                                       "waits (and is dropped past a second's backlog).")
    st.markdown("**Stages**: the rate moves linearly to each target over its duration")
    stages = st.data_editor(p.stages, key=k("stages"), num_rows="dynamic", disabled=disabled, hide_index=True,
                            column_config={
                                "durationS": st.column_config.NumberColumn("duration s", min_value=None),
                                "targetRps": st.column_config.NumberColumn("target req/s")})
    request = st.columns([1, 3])
    methods, method_index = _select(METHODS, p.method)
    method = request[0].selectbox("Method", methods, index=method_index, key=k("method"), disabled=disabled)
    path = request[1].text_input("Path", p.path, key=k("path"), disabled=disabled,
                                 help="The demo services answer /work?ms=<median ms>&cpu=<ms of CPU>.")
    payload = st.columns(2)
    headers = payload[0].text_area("Headers", p.headers, key=k("headers"), disabled=disabled, height=80,
                                   placeholder="Name: value, one a line")
    body = payload[1].text_area("Body", p.body, key=k("body"), disabled=disabled, height=80)
    st.markdown("**Faults and scaling** by offset into the load (a column applies to the kinds that take it)")
    steps = st.data_editor(p.steps, key=k("steps"), num_rows="dynamic", disabled=disabled, hide_index=True,
                           column_config={
                               "kind": st.column_config.SelectboxColumn("kind", options=STEP_KINDS, width=140),
                               "atS": st.column_config.NumberColumn("at s"),
                               "durationS": st.column_config.NumberColumn("duration s", help="Not for scale"),
                               "service": st.column_config.SelectboxColumn(
                                   "service", options=services,
                                   help="latency and failure: empty = the load's service; scale: required"),
                               "scaleTo": st.column_config.NumberColumn("scale to", help="scale only"),
                               "latencyMs": st.column_config.NumberColumn("latency ms", help="network-latency"),
                               "jitterMs": st.column_config.NumberColumn("jitter ms", help="network-latency"),
                               "probability": st.column_config.NumberColumn(
                                   "share 0..1", help="network-latency, service-failure"),
                               "statusCode": st.column_config.NumberColumn("status", help="service-failure"),
                               "mode": st.column_config.SelectboxColumn("mode", options=["error", "kill"],
                                                                        help="service-failure"),
                               "intensity": st.column_config.SelectboxColumn(
                                   "intensity", options=[i.value for i in Intensity], help="database-overload"),
                               "leakMBs": st.column_config.NumberColumn("leak MB/s", help="memory-leak")})
    st.markdown("**Thresholds**: latency in ms, errorRate and availability in %, dropped a count, rps per second")
    thresholds = st.data_editor(
        p.thresholds, key=k("thresholds"), num_rows="dynamic", disabled=disabled, hide_index=True,
        column_config={
            "metric": st.column_config.SelectboxColumn("metric", options=[m.value for m in ThresholdMetric]),
            "op": st.column_config.SelectboxColumn("op", options=[o.value for o in ThresholdOp]),
            "value": st.column_config.NumberColumn("value"),
            "windowS": st.column_config.NumberColumn("window s", help="Empty: over the whole run so far"),
            "abortOnFail": st.column_config.CheckboxColumn("abort on fail", help="Halt the run when it fails"),
            "delayS": st.column_config.NumberColumn("delay s", help="Abort not acted on before this much load")})
    st.markdown("**Steady state**: checked before the load and after it")
    probes = st.data_editor(
        p.probes, key=k("probes"), num_rows="dynamic", disabled=disabled, hide_index=True,
        column_config={
            "kind": st.column_config.SelectboxColumn("kind", options=[k.value for k in ProbeKind]),
            "service": st.column_config.SelectboxColumn("service", options=services,
                                                        help="Empty: the load's service"),
            "p95BelowMs": st.column_config.NumberColumn("p95 below ms", help="latency probes"),
            "requests": st.column_config.NumberColumn("requests", help="latency probes; empty: 20"),
            "path": st.column_config.TextColumn("path", help="Empty: /")})
    parts = FormParts(name=name, description=description, service=service, start_rps=start_rps,
                      users=None if users is None else int(users), method=method or "GET", path=path,
                      headers=headers, body=body, stages=stages, steps=steps, thresholds=thresholds, probes=probes)
    out = apply_form(st.session_state.get(DOC), parts)
    text = dump(out)
    last_gen, last = st.session_state.get(LAST, (None, None))
    if last_gen == gen and text != last:  # the user changed the form: the document and its raw text follow
        st.session_state[DOC] = out
        st.session_state[RAW] = text
        st.session_state.pop(RAW_ERROR, None)
    st.session_state[LAST] = (gen, text)


def raw_editor(disabled: bool) -> None:
    """The document as JSON; an edit that parses becomes the document (commit with Ctrl+Enter or by leaving it)."""
    st.text_area("Document (JSON)", key=RAW, height=720, on_change=_raw_changed, disabled=disabled,
                 help="The same document the API and `python -m engine experiment run FILE` take.")


def shown_problems() -> list[str]:
    """What is wrong with the document now: the raw text's JSON error, else the contract's field errors."""
    error = st.session_state.get(RAW_ERROR)
    return [error] if error else problems(st.session_state.get(DOC))
