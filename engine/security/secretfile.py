"""Secrets kept in files under DATA_DIR, readable by the owner only (0600)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["read_or_create", "write_secret"]


def write_secret(path: Path, value: str) -> None:
    """Create path with mode 0600 and write value; an existing file is replaced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")


def read_or_create(path: Path, nbytes: int = 32) -> str:
    """The secret in path, or a new random one written there (0600) if the file does not exist."""
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(nbytes)
    write_secret(path, value)
    return value
