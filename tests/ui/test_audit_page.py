"""The Audit page under streamlit's AppTest: admins only, against a real API that recorded real calls; its filters
and its CSV download (the API's CSV)."""

from __future__ import annotations

import csv
import io

import httpx
import pytest
from streamlit.runtime.media_file_manager import MediaFileManager

from contract.roles import Role
from tests.conftest import token_for
from tests.ui.conftest import open_page, texts


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """File name -> the bytes the page's last run handed a download button (AppTest keeps no media files)."""
    files: dict[str, bytes] = {}
    add = MediaFileManager.add

    def keep(self: MediaFileManager, data: bytes | str, mimetype: str, coordinates: str,
             file_name: str | None = None, is_for_static_download: bool = False) -> str:
        if file_name is not None and isinstance(data, bytes):
            files[file_name] = data
        return add(self, data, mimetype, coordinates, file_name, is_for_static_download)

    monkeypatch.setattr(MediaFileManager, "add", keep)
    return files


def csv_rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode(), newline="")))


def test_the_audit_page_is_for_admins_only(dash_env):
    at = open_page("pages/audit.py", role=Role.OPERATOR)
    assert not at.exception
    assert texts(at.error) == ["The audit trail needs the admin role; you are logged in as test-operator (operator)."]
    assert not at.dataframe and not at.text_input
    app = open_page("app.py", role=Role.OPERATOR)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        app.switch_page("pages/audit.py")  # not in a non-admin's navigation
    admin_app = open_page("app.py", role=Role.ADMIN, username="admin")
    admin_app.switch_page("pages/audit.py").run()
    assert texts(admin_app.title) == ["Audit"]


def test_admin_filters_the_audit_and_downloads_the_apis_csv(live_api, dash_env, settings, downloads):
    with httpx.Client(base_url=settings.api_base_url, trust_env=False) as c:
        operator = {"Authorization": "Bearer " + token_for(Role.OPERATOR)}
        assert c.post("/api/services", json={"name": "orders", "url": "http://127.0.0.1:7999"},
                      headers=operator).status_code == 201
        assert c.post("/api/auth/token", json={"username": "mallory", "password": "guess"}).status_code == 401
        assert c.get("/api/services", headers=operator).status_code == 200  # a read: not in the trail
    live_api.writer.flush()

    at = open_page("pages/audit.py", role=Role.ADMIN, username="admin")
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert table["who"].tolist() == ["anonymous", "test-operator"]
    assert table["call"].tolist() == ["POST /api/auth/token", "POST /api/services"]
    assert table["target"].tolist() == ["username=mallory", "id=1"]
    assert table["outcome"].tolist() == [401, 201]
    assert table["error"].tolist() == ["wrong username or password", ""]
    admin = {"Authorization": "Bearer " + token_for(Role.ADMIN, "admin")}
    api_csv = httpx.get(f"{settings.api_base_url}/api/audit?format=csv", headers=admin, trust_env=False).content
    assert downloads["audit.csv"] == api_csv  # the API's CSV itself (every row is within the last 24 hours)
    rows = csv_rows(downloads["audit.csv"])
    assert [(r["actor"], r["target"], r["outcome"]) for r in rows] == [
        ("", "username=mallory", "401"), ("test-operator", "id=1", "201")]

    at.selectbox(key="audit-outcome").set_value("4xx").run()
    assert at.dataframe[0].value["target"].tolist() == ["username=mallory"]
    assert [r["target"] for r in csv_rows(downloads["audit.csv"])] == ["username=mallory"]

    at.selectbox(key="audit-outcome").set_value("any")
    at.text_input(key="audit-actor").input("test-operator").run()
    assert at.dataframe[0].value["call"].tolist() == ["POST /api/services"]
    at.text_input(key="audit-actor").input("nobody").run()
    assert not at.dataframe and texts(at.info) == ["No audit rows match these filters."]
