"""An engine on an external PostgreSQL with every secret given creates its data directory itself (instance logs and
the like go there), as a clean clone's `make run` with DATABASE_URL, JWT_SECRET and ADMIN_PASSWORD needs."""

from __future__ import annotations

from pathlib import Path

from contract.settings import Settings
from engine.runtime import Runtime


def test_the_data_directory_is_created_when_nothing_else_creates_it(clean_db, settings: Settings, tmp_path: Path):
    data_dir = tmp_path / "not" / "there"
    assert settings.database_url is not None and settings.jwt_secret and settings.admin_password
    rt = Runtime.open(settings.replace(data_dir=data_dir))
    try:
        assert data_dir.is_dir()
    finally:
        rt.stop()
