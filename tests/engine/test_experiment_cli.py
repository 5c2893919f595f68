"""The experiment CLI on a file it cannot read: exit 2 (could not run) with the reason, never 1 (fail) or a
traceback; nothing is sent (the URL below has no server)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from engine.experiments.cli import EXIT_CANNOT_RUN, run_file

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing may be sent before the file is read


@pytest.mark.parametrize(("name", "text", "said"), [
    ("bad.yaml", "load: {path: /work?ms=5}\n", "is not YAML"),
    ("bad.json", '{"name": "x",', "is not JSON"),
    ("list.yaml", "- a\n- b\n", "the document must be an object"),
    ("missing.json", None, "No such file"),
], ids=["yaml-syntax", "json-syntax", "not-an-object", "missing"])
def test_an_unreadable_document_exits_2_with_the_reason(tmp_path: Path, name: str, text: str | None, said: str):
    path = tmp_path / name
    if text is not None:
        path.write_text(text, encoding="utf-8")
    out = io.StringIO()
    assert run_file(path, url=UNREACHABLE, token=None, out=out) == EXIT_CANNOT_RUN
    assert said in out.getvalue() and "Traceback" not in out.getvalue(), out.getvalue()
