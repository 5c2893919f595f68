"""A logging handler that feeds engine events to the logs table through the batch writer."""

from __future__ import annotations

import logging
from typing import Any

from contract.events import LogEvent
from engine.clock import Clock
from engine.store.writer import BatchWriter

__all__ = ["DatabaseLogHandler", "event_logger"]

_LEVELS = {"DEBUG": "DEBUG", "INFO": "INFO", "WARNING": "WARN", "ERROR": "ERROR", "CRITICAL": "ERROR"}
LEVELS = ("DEBUG", "INFO", "WARN", "ERROR")
ROOT_LOGGER = "mm"


class DatabaseLogHandler(logging.Handler):
    """Turns records of the `mm.*` loggers into LogEvents; `extra={"meta": {...}}` becomes metadata."""

    def __init__(self, writer: BatchWriter, clock: Clock, level: int = logging.INFO) -> None:
        super().__init__(level)
        self._writer = writer
        self._clock = clock

    def attach(self) -> None:
        """Receive the records of every `mm.*` logger from INFO up."""
        root = logging.getLogger(ROOT_LOGGER)
        root.setLevel(logging.INFO)
        root.addHandler(self)

    def detach(self) -> None:
        """Receive no more records."""
        logging.getLogger(ROOT_LOGGER).removeHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        """Queue the record; never raises into the caller."""
        try:
            meta: Any = getattr(record, "meta", None)
            source = record.name.removeprefix("mm.") or "engine"
            self._writer.submit(
                LogEvent(
                    timestamp=self._clock.now(),
                    level=_LEVELS.get(record.levelname, record.levelname),
                    source=source,
                    message=record.getMessage(),
                    metadata=meta if isinstance(meta, dict) else None,
                )
            )
        except Exception:  # pragma: no cover - logging must never break the engine
            self.handleError(record)


def event_logger(source: str) -> logging.Logger:
    """The logger whose records land in the logs table with this source name."""
    return logging.getLogger(f"{ROOT_LOGGER}.{source}")
