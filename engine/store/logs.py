"""A logging handler that feeds engine events to the logs table through the batch writer."""

from __future__ import annotations

import logging
from typing import Any

from contract.events import LogEvent
from contract.requests import LogLevel
from engine.clock import Clock
from engine.store.writer import BatchWriter

__all__ = ["DatabaseLogHandler", "event_logger", "level_of"]

ROOT_LOGGER = "mm"


def level_of(levelno: int) -> LogLevel:
    """The log table's level for a logging level number; a custom level falls to the standard one below it."""
    if levelno >= logging.ERROR:
        return LogLevel.ERROR
    if levelno >= logging.WARNING:
        return LogLevel.WARN
    return LogLevel.INFO if levelno >= logging.INFO else LogLevel.DEBUG


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
                    level=level_of(record.levelno).value,
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
