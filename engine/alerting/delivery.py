"""The values a delivery is made of: the retry policy, a channel as held in memory, a delivery as it stands."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contract.events import DeliveryRecord
from contract.notifications import ChannelType, DeliveryEvent, DeliveryStatus
from db.alerting_models import AlertChannelRow, DeliveryRow
from engine.alerting.channels import CHANNELS

__all__ = ["ChannelSpec", "Delivery", "NotifyPolicy"]


@dataclass(frozen=True)
class NotifyPolicy:
    """How long an attempt may take, how retries are spaced, how many deliveries wait per channel."""

    timeout: float = 10.0
    backoff: float = 30.0
    backoff_max: float = 300.0
    max_attempts: int = 6
    queue: int = 200

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the attempts-th failed attempt."""
        return float(min(self.backoff * 2 ** (attempts - 1), self.backoff_max))

    @property
    def horizon_s(self) -> float:
        """The longest a delivery can take from creation to its last attempt's end."""
        return sum(self.delay(n) for n in range(1, self.max_attempts)) + self.max_attempts * self.timeout


@dataclass(frozen=True)
class ChannelSpec:
    """A channel as the notifier holds it: its config validated."""

    id: int
    name: str
    type: ChannelType
    config: Any

    @classmethod
    def of_row(cls, row: AlertChannelRow) -> ChannelSpec:
        """The channel a stored row describes (ValueError when its config no longer validates)."""
        kind = ChannelType(row.type)
        return cls(row.id, row.name, kind, CHANNELS[kind].config_model.model_validate(row.config))


@dataclass
class Delivery:
    """One notification to one channel, as it stands."""

    id: uuid.UUID
    channel_id: int
    channel_name: str
    channel_type: ChannelType | None  # what the payload was rendered for (None: not known, a resumed row)
    fingerprint: str | None
    event: DeliveryEvent
    payload: dict[str, Any]
    created_at: datetime
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: int = 0
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    delivered_at: datetime | None = None

    def record(self) -> DeliveryRecord:
        """The row for the writer."""
        return DeliveryRecord(self.id, self.channel_id, self.channel_name, self.fingerprint, self.event.value,
                              self.status.value, self.attempts, self.last_error, self.payload, self.created_at,
                              self.next_attempt_at, self.delivered_at)

    @classmethod
    def of_row(cls, row: DeliveryRow) -> Delivery:
        """A stored unfinished delivery, to be resumed."""
        return cls(row.id, row.channel_id or 0, row.channel_name, None, row.fingerprint, DeliveryEvent(row.event),
                   row.payload, row.created_at, DeliveryStatus(row.status), row.attempts, row.last_error,
                   row.next_attempt_at, row.delivered_at)
