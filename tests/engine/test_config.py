"""Settings.from_env: defaults, parsing, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import ENV_VARS, Settings
from engine.errors import ConfigError


def test_defaults_without_environment():
    s = Settings.from_env({})
    assert (s.database_url, s.api_port, s.dashboard_port, s.health_interval, s.data_dir) == (
        None, 5000, 8501, 5.0, Path("data")
    )
    assert s.api_base_url == "http://127.0.0.1:5000"


def test_values_are_parsed():
    s = Settings.from_env({"API_PORT": "5050", "HEALTH_INTERVAL": "0.5", "ALLOW_REMOTE_INSTANCES": "1",
                           "DATABASE_URL": "", "LOG_LEVEL": "debug"})
    assert (s.api_port, s.health_interval, s.allow_remote_instances, s.database_url, s.log_level) == (
        5050, 0.5, True, None, "DEBUG"
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [("API_PORT", "70000"), ("API_PORT", "abc"), ("HEALTH_INTERVAL", "0"), ("HEALTH_FALL", "-1"),
     ("ALLOW_REMOTE_INSTANCES", "maybe"), ("LOG_LEVEL", "LOUD")],
)
def test_bad_values_name_the_variable(variable, value):
    with pytest.raises(ConfigError) as err:
        Settings.from_env({variable: value})
    assert err.value.variable == variable
    assert str(err.value).startswith(f"{variable}: ")


def test_readme_documents_every_variable():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    missing = [v for v in ENV_VARS if f"`{v}`" not in readme]
    assert missing == []
