"""The states the product reports, shared by every model that carries one."""

from __future__ import annotations

from typing import Literal

__all__ = ["Status"]

# an instance's or a service's health; unknown until the first checks have run
Status = Literal["healthy", "degraded", "unhealthy", "unknown"]
