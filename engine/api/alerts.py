"""/api/alert-rules (CRUD), /api/alerts (the evaluator's live state) and /api/silences.

A rule may name a service not registered (yet): it evaluates nothing until a service of that name exists. Its
channels must exist (422 naming `channels`). /api/alerts answers from memory, so it answers during a database
outage too. A silence may name a service not registered, but not a rule that does not exist (422 naming `rule`);
DELETE expires a silence (endsAt becomes now) and it stays listed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from contract.alerting import (
    AlertOut,
    AlertQuery,
    AlertRuleIn,
    AlertRuleOut,
    SilenceIn,
    SilenceOut,
    SilenceQuery,
    SilenceState,
)
from contract.errors import Conflict, NotFound, ValidationFailed
from contract.responses import DeletedOut
from contract.roles import Role
from db import alerting as queries
from db.alerting_models import AlertRuleRow, SilenceRow
from engine.alerting.model import AlertSnapshot, Rule
from engine.alerting.silences import silence_state
from engine.api.auth import authorize
from engine.api.context import runtime
from engine.api.routing import ApiBlueprint
from engine.store.logs import event_logger

__all__ = ["alert_out", "api", "rule_out", "silence_out"]

api = ApiBlueprint("alerts", tag="alerting")
log = event_logger("alerting")


def rule_out(row: AlertRuleRow) -> AlertRuleOut:
    """A stored rule as the API shows it."""
    r = Rule.of_row(row)
    return AlertRuleOut(id=r.id, name=r.name, kind=r.kind, service=r.service, threshold=r.threshold,
                        windowSeconds=r.window_s, forSeconds=r.for_s, severity=r.severity, channels=list(r.channels),
                        repeatSeconds=r.repeat_s, createdAt=row.created_at.isoformat())


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def alert_out(a: AlertSnapshot) -> AlertOut:
    """An alert as the API shows it."""
    return AlertOut(fingerprint=a.fingerprint, ruleId=a.rule_id, ruleName=a.rule_name, kind=a.kind,
                    severity=a.severity, service=a.service, state=a.state, silenced=a.silenced, value=a.value,
                    threshold=a.threshold, summary=a.summary, activeAt=a.active_at.isoformat(),
                    firedAt=_iso(a.fired_at), resolvedAt=_iso(a.resolved_at), lastNotifiedAt=_iso(a.last_notified_at),
                    incidentId=str(a.incident_id) if a.incident_id is not None else None, expected=a.expected)


def silence_out(row: SilenceRow) -> SilenceOut:
    """A silence as the API shows it, its state as of now."""
    return SilenceOut(id=row.id, service=row.service_name, rule=row.rule_id, startsAt=row.starts_at.isoformat(),
                      endsAt=row.ends_at.isoformat(), comment=row.comment, createdBy=row.created_by,
                      simulationId=row.simulation_id,
                      state=silence_state(row.starts_at, row.ends_at, runtime().clock.now()))


def _values(body: AlertRuleIn) -> queries.RuleValues:
    return {"name": body.name, "kind": body.kind.value, "service_name": body.service, "threshold": body.threshold,
            "window_seconds": body.windowSeconds, "for_seconds": body.forSeconds, "severity": body.severity.value,
            "channels": list(body.channels), "repeat_seconds": body.repeatSeconds}


def _check(session: Session, body: AlertRuleIn, rule_id: int | None = None) -> None:
    """409 on a name another rule has; 422 naming channels when one does not exist."""
    other = queries.rule_id_named(session, body.name)
    if other is not None and other != rule_id:
        raise Conflict(f"an alert rule named {body.name!r} already exists", [{"field": "name", "message": "taken"}])
    missing = queries.missing_channels(session, body.channels)
    if missing:
        raise ValidationFailed([{"field": "channels",
                                 "message": f"no alert channel with id {', '.join(map(str, missing))}"}])


def _rule(session: Session, rule_id: int) -> AlertRuleRow:
    row = queries.alert_rule(session, rule_id)
    if row is None:
        raise NotFound("alert rule", rule_id)
    return row


@api.route("POST", "/api/alert-rules", summary="Create an alert rule", role=Role.OPERATOR, body=AlertRuleIn,
           ok=(201, AlertRuleOut), errors=(409, 503))
def create_rule(body: AlertRuleIn) -> AlertRuleOut:
    """A new rule; evaluated from the next round on."""
    rt = runtime()
    try:
        with rt.sessions.begin() as session:
            _check(session, body)
            row = queries.add_rule(session, _values(body))
            out, rule = rule_out(row), Rule.of_row(row)
    except IntegrityError as exc:
        raise Conflict(f"an alert rule named {body.name!r} already exists") from exc
    rt.alerting.set_rule(rule)
    log.info("alert rule %s created", body.name, extra={"meta": {"rule": rule.id, "kind": rule.kind.value}})
    return out


@api.route("GET", "/api/alert-rules", summary="Alert rules", role=Role.VIEWER, ok=(200, list[AlertRuleOut]),
           errors=(503,))
def list_rules() -> list[AlertRuleOut]:
    """Every rule, by id."""
    with runtime().sessions() as session:
        return [rule_out(r) for r in queries.list_rules(session)]


@api.route("GET", "/api/alert-rules/<int:rule_id>", summary="One alert rule", role=Role.VIEWER,
           ok=(200, AlertRuleOut), errors=(404, 503))
def get_rule(rule_id: int) -> AlertRuleOut:
    """One rule."""
    with runtime().sessions() as session:
        return rule_out(_rule(session, rule_id))


@api.route("PUT", "/api/alert-rules/<int:rule_id>", summary="Replace an alert rule", role=Role.OPERATOR,
           body=AlertRuleIn, ok=(200, AlertRuleOut), errors=(404, 409, 503))
def update_rule(rule_id: int, body: AlertRuleIn) -> AlertRuleOut:
    """Every field replaced; its alerts are evaluated against the new rule next round (a new kind starts anew)."""
    rt = runtime()
    try:
        with rt.sessions.begin() as session:
            row = _rule(session, rule_id)
            _check(session, body, rule_id)
            row = queries.update_rule(session, row, _values(body), rt.clock.now())
            out, rule = rule_out(row), Rule.of_row(row)
    except IntegrityError as exc:
        raise Conflict(f"an alert rule named {body.name!r} already exists") from exc
    rt.alerting.set_rule(rule)
    log.info("alert rule %s changed", body.name, extra={"meta": {"rule": rule_id}})
    return out


@api.route("DELETE", "/api/alert-rules/<int:rule_id>", summary="Delete an alert rule (its alerts resolve)",
           role=Role.OPERATOR, ok=(200, DeletedOut), errors=(404, 503))
def delete_rule(rule_id: int) -> DeletedOut:
    """Gone; its alerts resolve at the next round."""
    rt = runtime()
    with rt.sessions.begin() as session:
        name = _rule(session, rule_id).name
        queries.delete_rule(session, rule_id)
    rt.alerting.drop_rule(rule_id)
    log.info("alert rule %s deleted", name, extra={"meta": {"rule": rule_id}})
    return DeletedOut(message=f"alert rule {name} deleted", id=rule_id)


@api.route("GET", "/api/alerts", summary="Alerts: pending, firing and the last day's resolved, newest first",
           role=Role.VIEWER, query=AlertQuery, ok=(200, list[AlertOut]))
def list_alerts(query: AlertQuery) -> list[AlertOut]:
    """From the evaluator's memory (answers while the database is away)."""
    out = []
    for a in runtime().alerting.alerts():
        if ((query.state is None or a.state is query.state) and (query.silenced is None or a.silenced is query.silenced)
                and (query.service is None or a.service == query.service)):
            out.append(alert_out(a))
            if len(out) == query.limit:
                break
    return out


@api.route("POST", "/api/silences", summary="Silence a service's or a rule's alerts for a while",
           role=Role.OPERATOR, body=SilenceIn, ok=(201, SilenceOut), errors=(503,))
def create_silence(body: SilenceIn) -> SilenceOut:
    """Matching alerts stay evaluated and shown, but are not notified between startsAt and endsAt."""
    rt = runtime()
    claims = authorize(Role.OPERATOR)
    with rt.sessions.begin() as session:
        if body.rule is not None and queries.alert_rule(session, body.rule) is None:
            raise ValidationFailed([{"field": "rule", "message": f"no alert rule with id {body.rule}"}])
        row = queries.add_silence(session, service=body.service, rule_id=body.rule, starts_at=body.startsAt,
                                  ends_at=body.endsAt, comment=body.comment,
                                  created_by=claims.username if claims else None)
        out = silence_out(row)
    rt.silences.reload()
    log.info("silence %d created: %s", out.id, body.comment,
             extra={"meta": {"silence": out.id, "service": body.service, "rule": body.rule}})
    return out


@api.route("GET", "/api/silences", summary="Silences, newest first", role=Role.VIEWER, query=SilenceQuery,
           ok=(200, list[SilenceOut]), errors=(503,))
def list_silences(query: SilenceQuery) -> list[SilenceOut]:
    """Pending, active and expired ones (state filters)."""
    rt = runtime()
    with rt.sessions() as session:
        rows = queries.silences(session, rt.clock.now(), query.state.value if query.state else None, query.limit)
        return [silence_out(r) for r in rows]


@api.route("DELETE", "/api/silences/<int:silence_id>", summary="Expire a silence now (it stays listed)",
           role=Role.OPERATOR, ok=(200, SilenceOut), errors=(404, 409, 503))
def expire_silence(silence_id: int) -> SilenceOut:
    """endsAt becomes now; 409 when it has already expired."""
    rt = runtime()
    with rt.sessions.begin() as session:
        row = queries.silence(session, silence_id)
        if row is None:
            raise NotFound("silence", silence_id)
        now = rt.clock.now()
        if silence_state(row.starts_at, row.ends_at, now) is SilenceState.EXPIRED:
            raise Conflict(f"silence {silence_id} has already expired")
        out = silence_out(queries.expire_silence(session, row, now))
    rt.silences.reload()
    log.info("silence %d expired", silence_id, extra={"meta": {"silence": silence_id}})
    return out
