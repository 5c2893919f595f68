"""The audit trail: every mutating API call recorded (who, what, target, outcome, when), refusals and errors included;
reads not recorded; no API and no plain SQL can clear it; retention the only deletion; GET /api/audit and its CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from contract.roles import Role
from db.models import AuditRow
from engine.api import create_app
from engine.runtime import Runtime
from tests.conftest import token_for

PASSWORD = "admin-password-for-tests"  # the test engine's admin
def viewer_headers() -> dict[str, str]:
    """A viewer's authorization header (made in a test: a user's token needs the test database)."""
    return {"Authorization": "Bearer " + token_for(Role.VIEWER)}


def admin_headers() -> dict[str, str]:
    """The admin's authorization header."""
    return {"Authorization": "Bearer " + token_for(Role.ADMIN, "admin")}


def audit_rows(runtime):
    """Every audit row, oldest first, once the writer has written what it holds."""
    runtime.writer.flush()
    with runtime.sessions() as s:
        return list(s.scalars(select(AuditRow).order_by(AuditRow.id)))


def fields(row: AuditRow) -> tuple[object, ...]:
    return (row.actor, row.actor_role, row.method, row.route, row.action, row.target, row.outcome, row.outcome_text)


def test_actions_refusals_and_logins_are_recorded_and_reads_are_not(runtime, client, anon):
    before = datetime.now(UTC)
    assert client.post("/api/services", json={"name": "orders", "url": "http://127.0.0.1:7999"}).status_code == 201
    assert client.get("/api/services").status_code == 200  # a read: not recorded
    assert client.get("/api/services/1").status_code == 200
    assert anon.post("/api/auth/token", json={"username": "admin", "password": "guess-1"}).status_code == 401
    assert anon.post("/api/auth/token", json={"username": "admin", "password": PASSWORD}).status_code == 200
    assert anon.delete("/api/services/1", headers=viewer_headers()).status_code == 403
    assert anon.delete("/api/services/1").status_code == 401  # no token
    assert client.post("/api/services", data="not json", content_type="application/json").status_code == 400
    assert client.put("/api/services/1", json={"weight": 0}).status_code == 422
    rows = audit_rows(runtime)
    assert [fields(r) for r in rows] == [
        ("test-operator", "operator", "POST", "/api/services", "services.create_service", "id=1", 201, None),
        (None, None, "POST", "/api/auth/token", "users.issue_token", "username=admin", 401,
         "wrong username or password"),
        (None, None, "POST", "/api/auth/token", "users.issue_token", "username=admin", 200, None),
        ("test-viewer", "viewer", "DELETE", "/api/services/<int:service_id>", "services.delete_service",
         "service_id=1", 403, "the operator role is required; this token is viewer"),
        (None, None, "DELETE", "/api/services/<int:service_id>", "services.delete_service", "service_id=1", 401,
         "a bearer token is required (POST /api/auth/token)"),
        ("test-operator", "operator", "POST", "/api/services", "services.create_service", None, 400,
         "invalid request: body"),
        ("test-operator", "operator", "PUT", "/api/services/<int:service_id>", "services.update_service",
         "service_id=1", 422, "invalid request: weight"),
    ]
    assert all(r.client == "127.0.0.1" for r in rows)
    assert all(before <= r.at <= datetime.now(UTC) for r in rows)
    with runtime.sessions() as s:  # no password, guessed or right, and no token anywhere in the table
        dump = " ".join(str(v) for row in s.execute(text("SELECT * FROM audit_log")) for v in row)
    assert "guess-1" not in dump and PASSWORD not in dump and "Bearer" not in dump and "eyJ" not in dump


def test_rate_limited_and_unmatched_calls_are_recorded(clean_db, settings):
    rt = Runtime.open(settings.replace(rate_limit=0.001, rate_burst=1))
    try:
        c = create_app(rt).test_client()
        assert c.post("/api/nothing-here", headers=viewer_headers()).status_code == 404
        assert c.post("/api/load-test/stop", headers=viewer_headers()).status_code == 429  # the bucket of one is spent
        rows = audit_rows(rt)
    finally:
        rt.stop()
    assert [fields(r) for r in rows] == [
        ("test-viewer", "viewer", "POST", "/api/nothing-here", None, None, 404, rows[0].outcome_text),
        ("test-viewer", "viewer", "POST", "/api/load-test/stop", "loadtests.stop", None, 429,
         "too many requests; retry after 1000 s"),
    ]
    assert rows[0].outcome_text is not None and "not found" in rows[0].outcome_text.lower()


def test_a_nul_in_a_path_is_recorded_without_losing_the_rows_beside_it(runtime, client):
    assert client.post("/api/services%00x").status_code == 404
    assert client.post("/api/services", json={"name": "orders", "url": "http://127.0.0.1:7999"}).status_code == 201
    rows = audit_rows(runtime)
    assert [(r.route, r.outcome) for r in rows] == [("/api/servicesx", 404), ("/api/services", 201)]
    assert runtime.writer.status().rejected == 0


def test_clearing_the_logs_leaves_the_audit_trail_whole(runtime, client):
    for name in ("a", "b", "c"):
        assert client.post("/api/services", json={"name": name, "url": "http://127.0.0.1:7999"}).status_code == 201
    assert len(audit_rows(runtime)) == 3
    r = client.delete("/api/logs")
    assert r.status_code == 200 and r.json["deleted"] >= 0
    rows = audit_rows(runtime)
    assert [(r.method, r.route, r.outcome) for r in rows] == [("POST", "/api/services", 201)] * 3 + [
        ("DELETE", "/api/logs", 200)]


def test_no_api_operation_deletes_audit_rows(client):
    doc = client.get("/api/openapi.json").json
    assert [m for m in doc["paths"]["/api/audit"]] == ["get"]


@pytest.mark.parametrize("statement", [
    "DELETE FROM audit_log",
    "UPDATE audit_log SET actor = 'someone-else'",
    "TRUNCATE audit_log",
], ids=["delete", "update", "truncate"])
def test_plain_sql_cannot_change_or_clear_the_audit_log(runtime, client, statement):
    assert client.post("/api/services", json={"name": "orders", "url": "http://127.0.0.1:7999"}).status_code == 201
    assert len(audit_rows(runtime)) == 1
    with pytest.raises(DBAPIError, match="audit_log is append-only"), runtime.sessions.begin() as s:
        s.execute(text(statement))
    [row] = audit_rows(runtime)
    assert row.actor == "test-operator"


def test_retention_deletes_only_rows_past_it_and_leaves_the_table_guarded(runtime):
    now = runtime.clock.now()
    with runtime.sessions.begin() as s:
        for days in (400, 366, 364, 1):
            s.add(AuditRow(at=now - timedelta(days=days), actor="old", method="POST", route="/api/services",
                           outcome=201))
    report = runtime.storage.run_once()  # AUDIT_RETENTION_DAYS: 365 by default
    assert report.deleted_rows >= 2
    assert sorted((now - r.at).days for r in audit_rows(runtime)) == [1, 364]
    with pytest.raises(DBAPIError, match="append-only"), runtime.sessions.begin() as s:
        s.execute(text("DELETE FROM audit_log"))  # the retention's setting ended with its transaction


def test_rows_acknowledged_before_a_clean_stop_are_written(clean_db, settings):
    rt = Runtime.open(settings.replace(flush_interval=3600.0))  # nothing written until the stop
    c = create_app(rt).test_client()
    token = {"Authorization": "Bearer " + token_for(Role.OPERATOR)}
    statuses = [c.post("/api/services", json={"name": f"s{n}", "url": "http://127.0.0.1:7999"},
                       headers=token).status_code for n in range(5)]
    assert statuses == [201] * 5
    with rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(AuditRow)) == 0  # still buffered
    rt.stop()
    with clean_db.connect() as conn:
        targets = conn.execute(text("SELECT target FROM audit_log ORDER BY id")).scalars().all()
    assert targets == [f"id={n}" for n in range(1, 6)]


def test_viewers_and_operators_get_403_on_the_audit(anon):
    for role in (Role.VIEWER, Role.OPERATOR):
        r = anon.get("/api/audit", headers={"Authorization": "Bearer " + token_for(role)})
        assert r.status_code == 403 and "admin" in r.json["error"]
    assert anon.get("/api/audit").status_code == 401


def test_filters_and_cursor(runtime, client, admin, anon):
    for name in ("a", "b", "c"):
        client.post("/api/services", json={"name": name, "url": "http://127.0.0.1:7999"})
    anon.post("/api/auth/token", json={"username": "nobody", "password": "x"})
    anon.delete("/api/services/1", headers=viewer_headers())
    audit_rows(runtime)

    def ids(**params):
        r = admin.get("/api/audit", query_string=params)
        assert r.status_code == 200, r.json
        return [e["id"] for e in r.json]

    assert ids() == [5, 4, 3, 2, 1]
    assert ids(actor="test-operator") == [3, 2, 1]
    assert ids(action="users.issue_token") == [4]
    assert ids(outcome="4xx") == [5, 4]
    assert ids(outcome="403") == [5]
    assert ids(outcome="2xx", limit=2) == [3, 2]
    assert ids(outcome="2xx", limit=2, before=2) == [1]  # the next page
    assert ids(since=(datetime.now(UTC) + timedelta(minutes=1)).isoformat()) == []
    assert ids(until=(datetime.now(UTC) + timedelta(minutes=1)).isoformat()) == [5, 4, 3, 2, 1]
    assert ids(since="2026-01-02T00:00:00Z", until="2026-01-01T00:00:00Z") == []  # an empty window holds nothing
    [login] = admin.get("/api/audit?action=users.issue_token").json
    assert login == {"id": 4, "at": login["at"], "actor": None, "actorRole": None, "client": "127.0.0.1",
                     "method": "POST", "route": "/api/auth/token", "action": "users.issue_token",
                     "target": "username=nobody", "outcome": 401, "outcomeText": "wrong username or password"}


BAD_QUERIES = [
    ("limit=0", "limit"), ("limit=10001", "limit"), ("outcome=abc", "outcome"), ("outcome=6xx", "outcome"),
    ("since=yesterday", "since"), ("until=0.5", "until"),
    ("before=0", "before"), ("format=xml", "format"), ("nope=1", "nope"), ("actor=a&actor=b", "actor"),
]


@pytest.mark.parametrize(("query", "field"), BAD_QUERIES, ids=[q for q, _ in BAD_QUERIES])
def test_bad_queries_are_400_naming_the_field_and_recorded_nothing(runtime, admin, query, field):
    r = admin.get(f"/api/audit?{query}")
    assert r.status_code == 400
    assert [d["field"] for d in r.json["details"]] == [field]
    assert audit_rows(runtime) == []  # a read, even a refused one, is not recorded


def test_csv_parses_back_to_the_same_rows(runtime, client, admin, anon):
    client.post("/api/services", json={"name": "orders", "url": "http://127.0.0.1:7999"})
    anon.post("/api/auth/token", json={"username": 'quote"comma,line\nbreak', "password": "x"})
    anon.post("/api/auth/token", json={"username": "=HYPERLINK(1)", "password": "x"})
    anon.delete("/api/services/1", headers=viewer_headers())
    audit_rows(runtime)
    entries = admin.get("/api/audit").json
    for r in (admin.get("/api/audit?format=csv"), admin.get("/api/audit", headers={"Accept": "text/csv"})):
        assert r.status_code == 200 and r.mimetype == "text/csv"
        assert r.headers["Content-Disposition"] == "attachment; filename=audit.csv"
        parsed = list(csv.DictReader(io.StringIO(r.get_data(as_text=True), newline="")))
        expected = [{k: "" if v is None else str(v) for k, v in e.items()} for e in entries]
        # a cell a spreadsheet would run as a formula starts with ' in the file
        assert expected[1]["target"] == "username==HYPERLINK(1)"  # starts with "u": left as it is
        assert parsed == expected
    assert len(entries) == 4 and entries[2]["target"] == 'username=quote"comma,line\nbreak'


def test_a_cell_that_starts_like_a_formula_is_quoted_in_the_csv():
    from contract.audit import AuditEntryOut
    from engine.api.audit import audit_csv

    entry = AuditEntryOut(id=1, at="2026-01-01T00:00:00+00:00", actor="=cmd|' /C calc'!A0", actorRole="admin",
                          client="::1", method="POST", route="/api/x", action="-2+3", target="@SUM(1)",
                          outcome=201, outcomeText=None)
    [row] = list(csv.DictReader(io.StringIO(audit_csv([entry]), newline="")))
    assert (row["actor"], row["action"], row["target"], row["client"]) == (
        "'=cmd|' /C calc'!A0", "'-2+3", "'@SUM(1)", "::1")
