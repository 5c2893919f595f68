"""Settings: defaults, parsing from the environment, errors that name the variable, masking, the generated document."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from contract.errors import ConfigError
from contract.settings import ENV_VARS, Settings, markdown
from engine.__main__ import main

ROOT = Path(__file__).parents[2]


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


def test_secrets_are_read_and_kept_out_of_the_repr():
    s = Settings.from_env({"JWT_SECRET": "x" * 40, "ADMIN_PASSWORD": "hunter22hunter22",
                           "DATABASE_URL": "postgresql://mm:db-pass-1@db:5432/mm"})
    assert s.jwt_secret is not None and s.jwt_secret.get_secret_value() == "x" * 40
    assert s.admin_password is not None and s.admin_password.get_secret_value() == "hunter22hunter22"
    assert s.database_url == "postgresql://mm:db-pass-1@db:5432/mm"
    assert "x" * 40 not in repr(s) and "hunter22" not in repr(s) and "db-pass-1" not in repr(s)
    assert "db:5432/mm" in repr(s)


def test_secrets_are_not_in_the_repr():
    s = Settings(jwt_secret=SecretStr("x" * 40), admin_password=SecretStr("hunter22hunter22"))
    assert "x" * 40 not in repr(s) and "hunter22" not in repr(s)


@pytest.mark.parametrize(
    ("variable", "value"),
    [("API_PORT", "70000"), ("API_PORT", "abc"), ("HEALTH_INTERVAL", "0"), ("HEALTH_FALL", "-1"),
     ("LOG_LEVEL", "LOUD"), ("JWT_SECRET", "short"), ("ADMIN_PASSWORD", "1234"), ("INSTANCE_ALLOWLIST", "10.0.0.0/99"),
     ("INSTANCE_ALLOWLIST", " , "), ("RATE_LIMIT_PER_S", "0"), ("LB_ALGORITHM", "fastest"),
     ("EJECT_MAX_PERCENT", "101"), ("ROUTE_RETRIES", "-1")],
)
def test_bad_values_name_the_variable(variable, value):
    with pytest.raises(ConfigError) as err:
        Settings.from_env({variable: value})
    assert err.value.variable == variable
    assert str(err.value).startswith(f"{variable}: ")


def test_a_short_secret_is_reported_in_characters():
    with pytest.raises(ConfigError, match=r"^JWT_SECRET: must be at least 32 characters$"):
        Settings.from_env({"JWT_SECRET": "short"})


def test_construction_takes_only_its_arguments(monkeypatch):
    monkeypatch.setenv("API_PORT", "6001")
    assert Settings().api_port == 5000 and Settings(api_port=6002).api_port == 6002
    assert Settings.from_env().api_port == 6001


def test_replace_changes_fields_and_validates():
    s = Settings(jwt_secret=SecretStr("x" * 40), rate_limit=5.0)
    changed = s.replace(rate_limit=0.5, rate_burst=3)
    assert (changed.rate_limit, changed.rate_burst, s.rate_limit) == (0.5, 3, 5.0)
    assert changed.jwt_secret == s.jwt_secret
    with pytest.raises(ValidationError):
        s.replace(api_port=0)


def test_readme_points_to_the_configuration_document():
    assert "(docs/configuration.md)" in (ROOT / "README.md").read_text()


def test_configuration_document_is_generated_from_the_declaration():
    document = (ROOT / "docs" / "configuration.md").read_text()
    assert document == markdown(), "regenerate: python -m engine config --markdown > docs/configuration.md"
    assert all(f"| `{variable}` |" in document for variable in ENV_VARS)


def test_config_prints_the_values_in_force_with_secrets_masked(monkeypatch, capsys):
    monkeypatch.setenv("JWT_SECRET", "jwt-secret-value-" + "s" * 20)
    monkeypatch.setenv("ADMIN_PASSWORD", "admin-pass-value")
    monkeypatch.setenv("DATABASE_URL", "postgresql://mm:db-pass-value@db.example:5432/mm")
    monkeypatch.setenv("API_PORT", "5123")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "jwt-secret-value" not in out and "admin-pass-value" not in out and "db-pass-value" not in out
    lines = dict(line.split(None, 1) for line in out.splitlines())
    assert lines["API_PORT"] == "5123"
    assert lines["DATABASE_URL"] == "postgresql://mm:***@db.example:5432/mm"
    assert lines["JWT_SECRET"] == lines["ADMIN_PASSWORD"] == "**********"
    assert list(lines) == list(ENV_VARS)


def test_config_with_a_bad_value_names_it_and_fails(monkeypatch, capsys):
    monkeypatch.setenv("API_PORT", "abc")
    assert main(["config"]) == 2
    assert capsys.readouterr().err.startswith("error: API_PORT: ")
