"""The engine runtime that the current request's app serves (set by create_app)."""

from __future__ import annotations

from flask import current_app

from engine.runtime import Runtime

__all__ = ["runtime"]


def runtime() -> Runtime:
    """The engine runtime the current app serves."""
    rt: Runtime = current_app.extensions["runtime"]
    return rt
