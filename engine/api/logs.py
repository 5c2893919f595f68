"""/api/logs: filter, search, CSV, clear."""

from __future__ import annotations

from flask import Response, request

from contract.requests import LogQuery
from contract.responses import LogOut, LogsClearedOut
from contract.roles import Role
from db import queries
from db.models import LogEntry
from engine.api.context import runtime
from engine.api.routing import ApiBlueprint
from engine.store.logs import event_logger

__all__ = ["api", "log_out"]

api = ApiBlueprint("logs", tag="logs")
log = event_logger("api")


def log_out(row: LogEntry) -> LogOut:
    """One log row as the API shows it."""
    return LogOut(id=row.id, timestamp=row.timestamp.isoformat(), level=row.level, source=row.source,
                  message=row.message, metadata=row.metadata_)


@api.route("GET", "/api/logs", summary="Log rows, newest first (CSV with Accept: text/csv)", role=Role.VIEWER,
           query=LogQuery, ok=(200, list[LogOut]), errors=(503,), csv=True)
def get_logs(query: LogQuery) -> list[LogOut] | Response:
    """Newest first; CSV when the client prefers text/csv."""
    f = queries.LogFilter(query.limit, query.level, query.source, query.q, query.since)
    with runtime().sessions() as session:
        if request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv":
            csv = queries.logs_csv(queries.logs_frame(session, f))
            return Response(csv, mimetype="text/csv",
                            headers={"Content-Disposition": "attachment; filename=logs.csv"})
        return [log_out(r) for r in queries.recent_logs(session, f)]


@api.route("DELETE", "/api/logs", summary="Delete every log row", role=Role.OPERATOR,
           ok=(200, LogsClearedOut), errors=(503,))
def clear_logs() -> LogsClearedOut:
    """Delete every log row (the clearing itself is logged afterwards)."""
    rt = runtime()
    rt.writer.flush()  # rows still buffered are older than this request: clear them too
    with rt.sessions.begin() as session:
        deleted = queries.clear_logs(session)
    log.info("logs cleared: %d row(s) deleted", deleted, extra={"meta": {"deleted": deleted}})
    return LogsClearedOut(message="logs cleared", deleted=deleted)
