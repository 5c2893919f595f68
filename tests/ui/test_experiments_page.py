"""The Experiments page under AppTest: the editor (form and raw document in step, validated as typed) without the
API, then saving, running and following a run, its verdict and a comparison against a real engine."""

from __future__ import annotations

import json
from typing import Any

from streamlit.testing.v1 import AppTest

from contract.roles import Role
from tests.ui.conftest import open_page, texts

PAGE = "pages/experiments.py"


def raw(at: AppTest) -> Any:
    """The raw document as the page shows it."""
    return json.loads(at.text_area(key="ex-raw").value or "")


def field(at: AppTest, label: str) -> Any:
    """The form's widget with this label (its key carries the editor's generation)."""
    found = [w for w in [*at.text_input, *at.number_input, *at.selectbox, *at.text_area] if w.label == label]
    assert len(found) == 1, f"{len(found)} widgets labelled {label!r}"
    return found[0]


def test_a_new_user_gets_the_starter_and_the_form_and_raw_document_stay_in_step(dash_env):
    at = open_page(PAGE)
    assert not at.exception
    assert any("is not reachable" in e for e in texts(at.error))  # no API: the editor drafts all the same
    doc = raw(at)
    assert doc["load"]["startRps"] == 50 and [s["targetRps"] for s in doc["load"]["stages"]] == [400, 50]
    assert doc["thresholds"] == [{"metric": "p95", "op": "<", "value": 200}]
    assert field(at, "Name").value == "orders-ramp" and field(at, "Start rate (req/s)").value == 50
    assert any(s.startswith("The document is valid.") for s in texts(at.success))

    field(at, "Name").set_value("checkout").run()  # the form writes the document
    assert raw(at)["name"] == "checkout"
    field(at, "Users").set_value(30).run()
    assert raw(at)["load"]["users"] == 30 and raw(at)["name"] == "checkout"

    doc = raw(at)
    doc["load"]["startRps"] = 75
    doc["description"] = "from the raw side"
    at.text_area(key="ex-raw").set_value(json.dumps(doc)).run()  # the raw document updates the form
    assert not at.exception
    assert field(at, "Start rate (req/s)").value == 75
    assert field(at, "Description").value == "from the raw side"
    assert field(at, "Name").value == "checkout"
    field(at, "Path").set_value("/work?ms=5").run()  # and the form still writes it, raw changes kept
    assert raw(at)["load"]["requests"][0]["path"] == "/work?ms=5" and raw(at)["load"]["startRps"] == 75


def test_a_bad_stage_is_named_by_its_field_and_blocks_save_and_run(dash_env):
    at = open_page(PAGE)
    doc = raw(at)
    doc["load"]["stages"][0]["durationS"] = 0
    at.text_area(key="ex-raw").set_value(json.dumps(doc)).run()
    [error] = [e for e in texts(at.error) if e.startswith("The document is not valid")]
    assert "`load.stages.0.durationS: Input should be greater than 0`" in error
    assert at.button(key="ex-save").proto.disabled and at.button(key="ex-run-start").proto.disabled
    assert at.button(key="ex-save").proto.help == "Fix the document first."

    at.text_area(key="ex-raw").set_value('{"name": "x",').run()  # not JSON: said, and the form keeps its values
    [error] = [e for e in texts(at.error) if e.startswith("The document is not valid")]
    assert "not JSON: Expecting property name enclosed in double quotes (line 1, column 14)" in error
    assert field(at, "Name").value == "orders-ramp"


def test_a_viewer_sees_the_editor_read_only(dash_env):
    at = open_page(PAGE, role=Role.VIEWER)
    assert not at.exception
    assert field(at, "Name").proto.disabled and at.text_area(key="ex-raw").proto.disabled
    for key in ("ex-save", "ex-run-start"):
        assert at.button(key=key).proto.disabled
        assert at.button(key=key).proto.help == "Needs the operator role; you are logged in as viewer."
