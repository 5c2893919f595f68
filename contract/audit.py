"""The audit trail: who called which mutating API operation, on what, and how it ended."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from contract.requests import IsoDateTime, StrictModel, Text

__all__ = ["AUDIT_CSV_COLUMNS", "MAX_AUDIT_ROWS", "AuditEntryOut", "AuditQuery"]

MAX_AUDIT_ROWS = 10_000
MAX_AUDIT_ID = 2**63 - 1  # audit ids are PostgreSQL bigints


class AuditQuery(StrictModel):
    """GET /api/audit query string: filters, a page size and a cursor (newest first)."""

    actor: Text | None = Field(default=None, max_length=100, description="the user name, exactly")
    action: Text | None = Field(default=None, max_length=100, description="the operation, e.g. users.add_user")
    outcome: str | None = Field(default=None, pattern=r"^[1-5](\d\d|xx)$",
                                description="an HTTP status (403) or a class of them (4xx)")
    since: IsoDateTime | None = Field(default=None, description="at or after (no zone: UTC)")
    until: IsoDateTime | None = Field(default=None, description="before (no zone: UTC; at or before since: no rows)")
    before: int | None = Field(default=None, ge=1, le=MAX_AUDIT_ID,
                               description="cursor: only rows with a smaller id (the last id of the previous page)")
    limit: int = Field(default=100, ge=1, le=MAX_AUDIT_ROWS)
    format: Literal["json", "csv"] = Field(default="json", description="csv: text/csv with a header row")

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value



class AuditEntryOut(BaseModel):
    """One mutating API call as recorded: never a body, a password or a token."""

    id: int
    at: str
    actor: str | None = Field(description="the user of the bearer token; null without a valid token (a login)")
    actorRole: str | None
    client: str | None = Field(description="the caller's address")
    method: str
    route: str = Field(description="the route template; the path itself when no route matched")
    action: str | None = Field(description="the operation (blueprint.view); null when no route matched")
    target: str | None = Field(description="what it acted on: the path's ids (service_id=12), a created id, a "
                                           "login's user name")
    outcome: int = Field(description="the HTTP status sent")
    outcomeText: str | None = Field(description="the error sent with an error status")


AUDIT_CSV_COLUMNS = tuple(AuditEntryOut.model_fields)
