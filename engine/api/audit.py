"""/api/audit (admins) and the hook that records every mutating API call in the audit trail.

Every POST, PUT, PATCH and DELETE answered by the API is recorded as it ends, refusals (401, 403, 429, 400/422)
and errors included: who (the token's user and role, or none), from where (the client address), what (method,
route template, operation), on what (the path's ids, a created id, a login's user name), the status sent and, for
an error, the error sent. Bodies, passwords, tokens and channel settings are never recorded. The proxy's traffic
(/proxy/…) is data, not an API call, and is not recorded.

The row goes through the batch writer like every other row the engine emits, so no request waits on the database;
the writer flushes what it holds when the engine stops.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from flask import Flask, Response, g, request

from contract.audit import AUDIT_CSV_COLUMNS, AuditEntryOut, AuditQuery
from contract.events import AuditEvent
from contract.roles import Role
from db import audit
from db.models import AuditRow
from engine.api.auth import client_address
from engine.api.context import runtime
from engine.api.routing import ApiBlueprint

__all__ = ["api", "audit_csv", "entry_out", "install_audit_trail", "note_target"]

api = ApiBlueprint("audit", tag="audit")

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# a spreadsheet runs a cell that starts with one of these as a formula: such a cell is written with a leading '
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def entry_out(row: AuditRow) -> AuditEntryOut:
    """One audit row as the API shows it."""
    return AuditEntryOut(id=row.id, at=row.at.isoformat(), actor=row.actor, actorRole=row.actor_role,
                         client=row.client, method=row.method, route=row.route, action=row.action,
                         target=row.target, outcome=row.outcome, outcomeText=row.outcome_text)


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def audit_csv(entries: Iterable[AuditEntryOut]) -> str:
    """Entries as CSV: a header row of the JSON field names, then one quoted row each (empty for null)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(AUDIT_CSV_COLUMNS)
    for entry in entries:
        writer.writerow([_cell(getattr(entry, c)) for c in AUDIT_CSV_COLUMNS])
    return out.getvalue()


@api.route("GET", "/api/audit", summary="Audit trail of mutating API calls, newest first (CSV: format=csv or "
           "Accept text/csv)", role=Role.ADMIN, query=AuditQuery, ok=(200, list[AuditEntryOut]), errors=(503,),
           csv=True)
def get_audit(query: AuditQuery) -> list[AuditEntryOut] | Response:
    """Rows matching the filters, newest first; the next page is `before` = the last id of this one."""
    f = audit.AuditFilter(query.limit, query.actor, query.action, query.outcome, query.since, query.until,
                          query.before)
    with runtime().sessions() as session:
        entries = [entry_out(r) for r in audit.list_audit(session, f)]
    wants_csv = request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv"
    if query.format == "csv" or wants_csv:
        return Response(audit_csv(entries), mimetype="text/csv",
                        headers={"Content-Disposition": "attachment; filename=audit.csv"})
    return entries


def note_target(target: str) -> None:
    """Say what this request acts on when its path does not (a login's user name)."""
    g.audit_target = target


def _clean(value: str | None, limit: int) -> str | None:
    """Text PostgreSQL stores whatever a client sent: no NUL, valid UTF-8, within the column."""
    if value is None:
        return None
    return value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")[:limit]


def _target(response: Response) -> str | None:
    noted: str | None = g.get("audit_target")
    if noted is not None:
        return noted
    if request.view_args:
        return ", ".join(f"{k}={v}" for k, v in request.view_args.items())
    if response.status_code == 201 and response.is_json:
        created = response.get_json(silent=True)
        if isinstance(created, dict) and created.get("id") is not None:
            return f"id={created['id']}"
    return None


def _error_text(response: Response) -> str | None:
    if response.status_code < 400 or not response.is_json:
        return None
    answer = response.get_json(silent=True)
    return str(answer.get("error")) if isinstance(answer, dict) and answer.get("error") else None


def install_audit_trail(app: Flask) -> None:
    """Record every mutating call as it is answered, whatever the answer (see the module docstring)."""

    @app.after_request
    def _record(response: Response) -> Response:
        if request.method not in MUTATING or request.path.startswith("/proxy/"):
            return response
        rt = runtime()
        claims = g.get("claims")
        rule = request.url_rule
        rt.writer.submit(AuditEvent(
            at=rt.clock.now(),
            actor=None if claims is None else _clean(claims.username, 100),
            actor_role=None if claims is None else claims.role.label,
            client=_clean(client_address(), 64),
            method=request.method,
            route=_clean(rule.rule if rule is not None else request.path, 200) or "/",
            action=request.endpoint if rule is not None else None,
            target=_clean(_target(response), 200),
            outcome=response.status_code,
            outcome_text=_clean(_error_text(response), 200),
        ))
        return response
