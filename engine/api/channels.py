"""/api/alert-channels (CRUD and a test send) and /api/deliveries: notification channels and what was sent.

Secrets are write-only: answers mask them (SECRET_MASK), and a PUT that leaves a masked field out, or sends it back
as shown, keeps the stored value. Channel hosts pass the SSRF guard's metadata rules when saved.
"""

from __future__ import annotations

from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from contract.errors import Conflict, NotFound, Unavailable, ValidationFailed
from contract.notifications import (
    SECRET_MASK,
    ChannelIn,
    ChannelOut,
    ChannelType,
    DeliveryEvent,
    DeliveryOut,
    DeliveryQuery,
    DeliveryStatus,
)
from contract.responses import DeletedOut
from contract.roles import Role
from db import channels as queries
from db.alerting_models import AlertChannelRow, DeliveryRow
from engine.alerting.channels import CHANNELS, Channel
from engine.alerting.delivery import Delivery
from engine.api.context import runtime
from engine.api.routing import ApiBlueprint
from engine.api.validation import validate_as
from engine.security.ssrf import channel_refusal
from engine.store.logs import event_logger

__all__ = ["api", "channel_out", "delivery_out", "keep_secrets"]

api = ApiBlueprint("channels", tag="alerting")
log = event_logger("notify")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def channel_out(row: AlertChannelRow) -> ChannelOut:
    """A stored channel as the API shows it: its secrets masked."""
    kind = ChannelType(row.type)
    return ChannelOut(id=row.id, name=row.name, type=kind, config=CHANNELS[kind].masked(row.config),
                      createdAt=row.created_at.isoformat())


def delivery_out(d: DeliveryRow | Delivery) -> DeliveryOut:
    """A delivery (a stored row, or one the notifier holds) as the API shows it."""
    return DeliveryOut(
        id=str(d.id), channelId=d.channel_id or None, channelName=d.channel_name, fingerprint=d.fingerprint,
        event=DeliveryEvent(d.event), status=DeliveryStatus(d.status), attempts=d.attempts, lastError=d.last_error,
        createdAt=d.created_at.isoformat(), nextAttemptAt=_iso(d.next_attempt_at), deliveredAt=_iso(d.delivered_at),
        payload=d.payload,
    )


def keep_secrets(channel: Channel, stored: dict[str, Any], sent: dict[str, Any]) -> dict[str, Any]:
    """sent, with every masked field that it leaves out, sends as SECRET_MASK or sends back as shown taken from
    stored: a client that edits what GET showed keeps the secrets it never saw."""
    shown = channel.masked(stored)
    merged = dict(sent)
    for key, value in stored.items():
        if shown.get(key) == value:
            continue  # not a masked field
        if key not in sent or sent[key] in (SECRET_MASK, shown.get(key)):
            merged[key] = value
    return merged


def _checked_config(kind: ChannelType, sent: dict[str, Any], stored: AlertChannelRow | None) -> dict[str, Any]:
    """The config to store: secrets kept, validated against the type's model (422 naming `config.<field>`),
    its hosts past the SSRF guard, and what the model cannot check checked by the type."""
    channel = CHANNELS[kind]
    if stored is not None and stored.type == kind.value:
        sent = keep_secrets(channel, stored.config, sent)
    masked = [{"field": f"config.{k}", "message": f"holds the mask {SECRET_MASK}: send the whole value, or leave "
                                                 "it out to keep the stored one"}
              for k, v in sent.items() if isinstance(v, str) and SECRET_MASK in v]
    if masked:
        raise ValidationFailed(masked)
    config = validate_as(channel.config_model, sent, "config")
    problems = [{"field": f, "message": m} for f, m in channel.problems(config)]
    problems += [{"field": f, "message": f"refused: {reason}"} for f, host in channel.hosts(config)
                 if (reason := channel_refusal(host, policy=runtime().notifier.guard)) is not None]
    if problems:
        raise ValidationFailed(problems)
    stored_config: dict[str, Any] = config.model_dump(mode="json", by_alias=True)
    return stored_config


def _get(session: Session, channel_id: int) -> AlertChannelRow:
    row = queries.get_channel(session, channel_id)
    if row is None:
        raise NotFound("alert channel", channel_id)
    return row


def _name_taken(session: Session, name: str, other_than: int | None = None) -> None:
    existing = queries.channel_id_named(session, name)
    if existing is not None and existing != other_than:
        raise Conflict(f"an alert channel named {name!r} already exists", [{"field": "name", "message": "taken"}])


@api.route("GET", "/api/alert-channels", summary="List notification channels (secrets masked)",
           role=Role.OPERATOR, ok=(200, list[ChannelOut]), errors=(503,))
def list_channels() -> list[ChannelOut]:
    """Every channel, by id."""
    with runtime().sessions() as session:
        return [channel_out(r) for r in queries.list_channels(session)]


@api.route("GET", "/api/alert-channels/<int:channel_id>", summary="One notification channel (secrets masked)",
           role=Role.OPERATOR, ok=(200, ChannelOut), errors=(404, 503))
def get_channel(channel_id: int) -> ChannelOut:
    """One channel."""
    with runtime().sessions() as session:
        return channel_out(_get(session, channel_id))


@api.route("POST", "/api/alert-channels", summary="Add a notification channel", role=Role.ADMIN, body=ChannelIn,
           ok=(201, ChannelOut), errors=(409, 503))
def create_channel(body: ChannelIn) -> ChannelOut:
    """Add a channel; its config is checked against its type's model."""
    config = _checked_config(body.type, body.config, None)
    rt = runtime()
    try:
        with rt.sessions.begin() as session:
            _name_taken(session, body.name)
            result = channel_out(queries.add_channel(session, body.name, body.type.value, config))
    except IntegrityError as exc:
        raise Conflict(f"an alert channel named {body.name!r} already exists") from exc
    rt.reload_channels()
    log.info("alert channel %s added (%s)", body.name, body.type.value,
             extra={"meta": {"channel": body.name, "type": body.type.value, "id": result.id}})
    return result


@api.route("PUT", "/api/alert-channels/<int:channel_id>", summary="Change a notification channel",
           role=Role.ADMIN, body=ChannelIn, ok=(200, ChannelOut), errors=(409, 503))
def update_channel(channel_id: int, body: ChannelIn) -> ChannelOut:
    """Replace a channel's name, type and config; masked secrets left out or sent back as shown are kept."""
    rt = runtime()
    try:
        with rt.sessions.begin() as session:
            row = _get(session, channel_id)
            config = _checked_config(body.type, body.config, row)
            _name_taken(session, body.name, other_than=channel_id)
            row.name, row.type, row.config = body.name, body.type.value, config
            row.updated_at = rt.clock.now()
            session.flush()
            result = channel_out(row)
    except IntegrityError as exc:
        raise Conflict("the change clashes with another alert channel") from exc
    rt.reload_channels()
    log.info("alert channel %s changed (%s)", body.name, body.type.value,
             extra={"meta": {"channel": body.name, "type": body.type.value, "id": channel_id}})
    return result


@api.route("DELETE", "/api/alert-channels/<int:channel_id>", summary="Delete a notification channel",
           role=Role.ADMIN, ok=(200, DeletedOut), errors=(503,))
def delete_channel(channel_id: int) -> DeletedOut:
    """Delete a channel; its deliveries stay listed under its name, and those still waiting fail."""
    rt = runtime()
    with rt.sessions.begin() as session:
        name = _get(session, channel_id).name
        queries.delete_channel(session, channel_id)
    rt.reload_channels()
    log.info("alert channel %s deleted", name, extra={"meta": {"channel": name, "id": channel_id}})
    return DeletedOut(message=f"alert channel {name} deleted", id=channel_id)


@api.route("POST", "/api/alert-channels/<int:channel_id>/test",
           summary="Send a test notification now (one attempt) and answer with its delivery", role=Role.ADMIN,
           ok=(200, DeliveryOut), errors=(503,))
def test_channel(channel_id: int) -> DeliveryOut:
    """One attempt now, bounded by NOTIFY_TIMEOUT_S; the delivery says delivered, or failed with lastError."""
    rt = runtime()
    if rt.notifier.channel(channel_id) is None:
        raise NotFound("alert channel", channel_id)
    future = rt.run_soon(rt.notifier.test(channel_id))
    try:
        delivery = future.result(timeout=rt.settings.notify_timeout + 5.0)
    except LookupError:
        raise NotFound("alert channel", channel_id) from None
    except FutureTimeout:
        future.cancel()
        raise Unavailable("the test notification did not finish in time") from None
    return delivery_out(delivery)


@api.route("GET", "/api/deliveries", summary="Notification deliveries, newest first", role=Role.VIEWER,
           query=DeliveryQuery, ok=(200, list[DeliveryOut]), errors=(503,))
def list_deliveries(query: DeliveryQuery) -> list[DeliveryOut]:
    """Deliveries as recorded (the writer stores them within its flush interval), newest first."""
    with runtime().sessions() as session:
        rows = queries.deliveries(session, query.channel, query.status, query.limit)
        return [delivery_out(r) for r in rows]
