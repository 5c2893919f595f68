"""/api/logs: filter, search, CSV, clear."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue

from db import queries
from db.models import LogEntry
from engine.api import runtime
from engine.errors import ValidationFailed
from engine.logs import LEVELS, event_logger

__all__ = ["bp", "log_json", "parse_log_filter"]

bp = Blueprint("logs", __name__)
log = event_logger("api")
MAX_LIMIT = 1000


def log_json(r: LogEntry) -> dict[str, Any]:
    """One log row as JSON."""
    return {"id": r.id, "timestamp": r.timestamp.isoformat(), "level": r.level, "source": r.source,
            "message": r.message, "metadata": r.metadata_}


def parse_log_filter(args: dict[str, str]) -> queries.LogFilter:
    """Query parameters -> LogFilter; every bad parameter is named in the 400."""
    problems: list[dict[str, str]] = []
    limit = 100
    if "limit" in args:
        try:
            limit = int(args["limit"])
            if not 1 <= limit <= MAX_LIMIT:
                raise ValueError
        except ValueError:
            problems.append({"field": "limit", "message": f"must be an integer 1..{MAX_LIMIT}"})
    level = args.get("level") or None
    if level is not None:
        level = level.upper()
        if level == "WARNING":
            level = "WARN"
        if level not in LEVELS:
            problems.append({"field": "level", "message": f"must be one of {', '.join(LEVELS)}"})
    since = None
    if args.get("since"):
        try:
            since = datetime.fromisoformat(args["since"])
        except ValueError:
            problems.append({"field": "since", "message": "must be an ISO 8601 timestamp"})
    if problems:
        raise ValidationFailed(problems, status=400)
    return queries.LogFilter(limit, level, args.get("source") or None, args.get("q") or None, since)


@bp.get("/api/logs")
def get_logs() -> ResponseReturnValue:
    """Newest first; CSV when the client accepts text/csv."""
    f = parse_log_filter(request.args.to_dict())
    with runtime().sessions() as session:
        if request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv":
            csv = queries.logs_csv(queries.logs_frame(session, f))
            return Response(csv, mimetype="text/csv",
                            headers={"Content-Disposition": "attachment; filename=logs.csv"})
        rows = queries.recent_logs(session, f)
        return jsonify([log_json(r) for r in rows])


@bp.delete("/api/logs")
def clear_logs() -> ResponseReturnValue:
    """Delete every log row (the clearing itself is logged afterwards)."""
    rt = runtime()
    rt.writer.flush()  # rows still buffered are older than this request: clear them too
    with rt.sessions.begin() as session:
        deleted = queries.clear_logs(session)
    log.info("logs cleared: %d row(s) deleted", deleted, extra={"meta": {"deleted": deleted}})
    return jsonify({"message": "logs cleared", "deleted": deleted})
