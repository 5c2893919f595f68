"""The database log handler's level mapping: every logging level lands on one the log table and API know."""

from __future__ import annotations

import logging

import pytest

from contract.requests import LogLevel
from engine.store.logs import level_of


@pytest.mark.parametrize(("levelno", "level"), [
    (logging.DEBUG, "DEBUG"), (logging.INFO, "INFO"), (25, "INFO"), (logging.WARNING, "WARN"), (35, "WARN"),
    (logging.ERROR, "ERROR"), (logging.CRITICAL, "ERROR"), (5, "DEBUG"),
], ids=["debug", "info", "custom-25", "warning", "custom-35", "error", "critical", "custom-5"])
def test_every_level_maps_to_a_known_one(levelno, level):
    assert level_of(levelno) == level and level_of(levelno) in set(LogLevel)
