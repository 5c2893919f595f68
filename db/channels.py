"""Notification channels and their deliveries: a Session first, rows out, never a commit."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from contract.notifications import DeliveryEvent, DeliveryStatus
from db.alerting_models import AlertChannelRow, DeliveryRow

__all__ = [
    "UNFINISHED",
    "add_channel",
    "channel_id_named",
    "delete_channel",
    "deliveries",
    "delivery",
    "fail_unfinished_before",
    "get_channel",
    "list_channels",
    "unfinished_deliveries",
]

UNFINISHED = (DeliveryStatus.PENDING.value, DeliveryStatus.RETRYING.value)


def list_channels(session: Session) -> list[AlertChannelRow]:
    """Every channel, by id."""
    return list(session.scalars(select(AlertChannelRow).order_by(AlertChannelRow.id)))


def get_channel(session: Session, channel_id: int) -> AlertChannelRow | None:
    """One channel, or None."""
    return session.get(AlertChannelRow, channel_id)


def channel_id_named(session: Session, name: str) -> int | None:
    """The id of the channel with this name, or None."""
    return session.scalar(select(AlertChannelRow.id).where(AlertChannelRow.name == name))


def add_channel(session: Session, name: str, kind: str, config: dict[str, Any]) -> AlertChannelRow:
    """A new channel, flushed (its id and created_at known)."""
    row = AlertChannelRow(name=name, type=kind, config=config)
    session.add(row)
    session.flush()
    session.refresh(row)
    return row


def delete_channel(session: Session, channel_id: int) -> bool:
    """Delete a channel (its deliveries keep its name, their channel_id becomes NULL); whether it existed."""
    row = session.get(AlertChannelRow, channel_id)
    if row is None:
        return False
    session.delete(row)
    return True


def deliveries(session: Session, channel_id: int | None = None, status: DeliveryStatus | None = None,
               limit: int = 100) -> list[DeliveryRow]:
    """Deliveries newest first, of one channel and in one status when given."""
    stmt = select(DeliveryRow).order_by(DeliveryRow.created_at.desc(), DeliveryRow.id).limit(limit)
    if channel_id is not None:
        stmt = stmt.where(DeliveryRow.channel_id == channel_id)
    if status is not None:
        stmt = stmt.where(DeliveryRow.status == status.value)
    return list(session.scalars(stmt))


def unfinished_deliveries(session: Session, since: datetime) -> list[DeliveryRow]:
    """Pending and retrying deliveries of alerts created at or after since, oldest first (test sends are
    never resumed)."""
    return list(session.scalars(
        select(DeliveryRow)
        .where(DeliveryRow.status.in_(UNFINISHED), DeliveryRow.created_at >= since,
               DeliveryRow.event != DeliveryEvent.TEST.value)
        .order_by(DeliveryRow.created_at)
    ))


def fail_unfinished_before(session: Session, before: datetime, reason: str) -> int:
    """Fail every pending or retrying delivery created before `before` (and every unfinished test send) with
    reason; how many."""
    result = session.execute(
        update(DeliveryRow)
        .where(DeliveryRow.status.in_(UNFINISHED),
               (DeliveryRow.created_at < before) | (DeliveryRow.event == DeliveryEvent.TEST.value))
        .values(status=DeliveryStatus.FAILED.value, last_error=reason, next_attempt_at=None)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def delivery(session: Session, delivery_id: uuid.UUID) -> DeliveryRow | None:
    """One delivery, or None."""
    return session.get(DeliveryRow, delivery_id)
