"""Settings.from_env: defaults, parsing, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from contract.errors import ConfigError
from contract.settings import ENV_VARS, Settings


def test_defaults_without_environment():
    s = Settings.from_env({})
    assert (s.database_url, s.api_port, s.dashboard_port, s.health_interval, s.data_dir) == (
        None, 5000, 8501, 5.0, Path("data")
    )
    assert s.api_base_url == "http://127.0.0.1:5000"


def test_values_are_parsed():
    s = Settings.from_env({"API_PORT": "5050", "HEALTH_INTERVAL": "0.5", "INSTANCE_ALLOWLIST": " 10.0.0.0/8, *,svc",
                           "DATABASE_URL": "", "LOG_LEVEL": "debug", "JWT_SECRET": ""})
    assert (s.api_port, s.health_interval, s.instance_allowlist, s.database_url, s.log_level, s.jwt_secret) == (
        5050, 0.5, ("10.0.0.0/8", "*", "svc"), None, "DEBUG", None
    )


def test_secrets_are_not_in_the_repr():
    s = Settings(jwt_secret="x" * 40, admin_password="hunter22hunter22")
    assert "x" * 40 not in repr(s) and "hunter22" not in repr(s)


@pytest.mark.parametrize(
    ("variable", "value"),
    [("API_PORT", "70000"), ("API_PORT", "abc"), ("HEALTH_INTERVAL", "0"), ("HEALTH_FALL", "-1"),
     ("LOG_LEVEL", "LOUD"), ("JWT_SECRET", "short"), ("ADMIN_PASSWORD", "1234"), ("INSTANCE_ALLOWLIST", "10.0.0.0/99"),
     ("INSTANCE_ALLOWLIST", " , "), ("RATE_LIMIT_PER_S", "0")],
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
