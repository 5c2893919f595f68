"""Settings: every configurable value declared once, with its type, default, bounds, description and variable.

`Settings(...)` holds exactly the values it is given (tests build it by keyword); `Settings.from_env()` reads
the environment, and a bad value raises ConfigError naming the variable. docs/configuration.md is rendered
from these declarations by `python -m engine config --markdown`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, MinLen
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

from contract.errors import ConfigError
from contract.traffic import Algorithm

__all__ = ["ENV_VARS", "SECRET_VARS", "Settings", "effective", "markdown", "mask_url", "parse_allowlist"]

_SERVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")  # contract.requests.Name
# an empty value means unset
_OPTIONAL = ("database_url", "api_url", "jwt_secret", "admin_password", "metrics_token", "public_url")


def parse_allowlist(raw: str) -> tuple[str, ...]:
    """Comma-separated `*`, host names and CIDRs; raises ValueError naming a bad entry."""
    entries = tuple(e.strip().lower() for e in raw.split(",") if e.strip())
    for entry in entries:
        if entry == "*" or "/" not in entry:
            continue
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(f"{entry!r} is not a valid CIDR") from None
    if not entries:
        raise ValueError("must list at least one host or CIDR (or *)")
    return entries


class Settings(BaseSettings):
    """Everything configurable, with the defaults a fresh machine runs on."""

    model_config = SettingsConfigDict(
        frozen=True, extra="forbid", case_sensitive=True, validate_by_name=True, validate_by_alias=True,
        validate_default=False,
    )

    database_url: str | None = Field(
        default=None, validation_alias="DATABASE_URL",
        description="PostgreSQL URL (`postgresql://user@host:5432/db`); unset = embedded PostgreSQL under `DATA_DIR`")
    data_dir: Path = Field(
        default=Path("data"), validation_alias="DATA_DIR",
        description="embedded PostgreSQL data (`DATA_DIR/pg`), generated secrets and child process logs")
    api_host: str = Field(
        default="127.0.0.1", validation_alias="API_HOST", description="address the REST API and the dashboard bind")
    api_port: int = Field(default=5000, ge=1, le=65535, validation_alias="API_PORT", description="REST API port")
    proxy_port: int = Field(
        default=5080, ge=0, le=65535, validation_alias="PROXY_PORT",
        description="traffic listener port (`/proxy/<service>/<path>` served on the engine's event loop, on "
                    "`API_HOST`); 0 = a free port picked at start")
    proxy_connection_limit: int = Field(
        default=4096, ge=1, le=100_000, validation_alias="PROXY_CONNECTION_LIMIT",
        description="open traffic-listener connections at most; past it a new one is answered 503 and closed")
    api_url: str | None = Field(
        default=None, validation_alias="API_URL",
        description="where the dashboard finds the API; unset = `http://API_HOST:API_PORT`")
    dashboard_port: int = Field(
        default=8501, ge=1, le=65535, validation_alias="DASHBOARD_PORT",
        description="Streamlit port")
    health_interval: float = Field(
        default=5.0, gt=0, validation_alias="HEALTH_INTERVAL",
        description="seconds between two checks of an instance (each instance at its own phase of the interval)")
    health_timeout: float = Field(
        default=2.0, gt=0, validation_alias="HEALTH_TIMEOUT",
        description="seconds before a check or scrape counts as a timeout")
    degraded_ms: float = Field(
        default=1000.0, gt=0, validation_alias="HEALTH_DEGRADED_MS",
        description="a 2xx slower than this many ms is degraded")
    fall: int = Field(
        default=2, gt=0, validation_alias="HEALTH_FALL",
        description="consecutive worse results before an instance's state worsens")
    rise: int = Field(
        default=2, gt=0, validation_alias="HEALTH_RISE",
        description="consecutive better results before an instance's state improves")
    health_concurrency: int = Field(
        default=50, gt=0, validation_alias="HEALTH_CONCURRENCY",
        description="checks (and metric scrapes) in flight at once")
    collect_interval: float = Field(
        default=5.0, gt=0, validation_alias="COLLECT_INTERVAL", description="metrics bucket length in seconds")
    flush_interval: float = Field(
        default=0.5, gt=0, validation_alias="WRITER_FLUSH_INTERVAL", description="seconds between batch writes")
    writer_max_buffer: int = Field(
        default=10_000, gt=0, validation_alias="WRITER_MAX_BUFFER",
        description="events held while the database is unreachable; past it the oldest are dropped and counted")
    writer_batch_rows: int = Field(
        default=10_000, gt=0, validation_alias="WRITER_BATCH_ROWS",
        description="events per write; this many waiting are written at once without waiting for the interval")
    retention_days: int = Field(
        default=7, gt=0, validation_alias="METRICS_RETENTION_DAYS",
        description="days of metrics (daily partitions and the 1-minute rollup), of the per-minute health check "
                    "rollup and of logs kept; whole older days are dropped")
    partitions_ahead: int = Field(
        default=2, ge=0, validation_alias="PARTITIONS_AHEAD",
        description="daily metric partitions created ahead of today")
    health_retention_days: int = Field(
        default=90, gt=0, validation_alias="HEALTH_RETENTION_DAYS",
        description="days of health state changes and daily check counts kept (uptime windows and the daily "
                    "bars reach this far back; 90 or more for full 90-day bars); the per-minute check rollup "
                    "follows METRICS_RETENTION_DAYS")
    audit_retention_days: int = Field(
        default=365, gt=0, validation_alias="AUDIT_RETENTION_DAYS",
        description="days of the audit trail kept; storage maintenance deletes older rows, the only deletion the "
                    "audit_log table allows")
    health_recent_checks: int = Field(
        default=120, ge=1, le=1000, validation_alias="HEALTH_RECENT_CHECKS",
        description="latest check results kept in memory per instance for heartbeat bars")
    maintenance_interval: float = Field(
        default=3600.0, gt=0, validation_alias="MAINTENANCE_INTERVAL_S",
        description="seconds between partition upkeep / retention runs; one also runs at start")
    demo_port_base: int = Field(
        default=7100, ge=1, le=65535, validation_alias="DEMO_PORT_BASE",
        description="first loopback port tried for demo instances")
    demo_seed: int = Field(
        default=42, validation_alias="DEMO_SEED",
        description="seed of the demo services' latency model")
    instance_allowlist: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("127.0.0.0/8", "::1/128", "localhost"), validation_alias="INSTANCE_ALLOWLIST",
        description="comma-separated host names, addresses and CIDRs instance URLs may resolve to, checked at every "
                    "connection; `*` = any; a link-local or metadata address only when listed exactly (`a.b.c.d`, "
                    "`a.b.c.d/32`)")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", validation_alias="LOG_LEVEL", description="console log level (any case)")
    jwt_secret: SecretStr | None = Field(
        default=None, min_length=32, validation_alias="JWT_SECRET",
        description="HS256 signing secret; unset = generated once into `DATA_DIR/jwt_secret` (0600)")
    token_ttl: float = Field(
        default=8 * 3600.0, gt=0, validation_alias="TOKEN_TTL", description="seconds a token stays valid (28800 = 8 h)")
    admin_password: SecretStr | None = Field(
        default=None, min_length=8, validation_alias="ADMIN_PASSWORD",
        description="password of the first admin, used only when no user exists; unset = generated")
    metrics_token: SecretStr | None = Field(
        default=None, min_length=16, validation_alias="METRICS_TOKEN",
        description="bearer token `GET /metrics` requires (Prometheus' `authorization: credentials:`); unset = "
                    "`/metrics` is public, and it names the services and instance URLs the engine watches")
    rate_limit: float = Field(
        default=20.0, gt=0, validation_alias="RATE_LIMIT_PER_S",
        description="API requests per second per user or client address")
    rate_burst: int = Field(
        default=100, gt=0, validation_alias="RATE_LIMIT_BURST",
        description="requests allowed at once before the rate applies")
    proxy_rate_limit: float = Field(
        default=1000.0, gt=0, validation_alias="PROXY_RATE_LIMIT_PER_S",
        description="`/proxy` requests per second per user or address, a bucket of its own")
    proxy_rate_burst: int = Field(
        default=2000, gt=0, validation_alias="PROXY_RATE_LIMIT_BURST", description="`/proxy` requests allowed at once")
    login_attempts: int = Field(
        default=10, gt=0, validation_alias="LOGIN_ATTEMPTS", description="failed logins per client address before 429")
    login_refill: float = Field(
        default=60.0, gt=0, validation_alias="LOGIN_REFILL_S",
        description="seconds to earn back one failed-login attempt")
    max_body_bytes: int = Field(
        default=65_536, gt=0, validation_alias="MAX_BODY_BYTES", description="largest request body; larger is 413")
    max_header_bytes: int = Field(
        default=65_536, ge=1024, validation_alias="MAX_HEADER_BYTES",
        description="largest request line and headers of an API or traffic-listener request together; larger is "
                    "431")
    api_idle_timeout: int = Field(
        default=30, ge=1, validation_alias="API_IDLE_TIMEOUT_S",
        description="seconds an API or traffic-listener connection may stay idle, or a request half sent, before "
                    "the server closes it")
    api_threads: int = Field(
        default=16, ge=1, le=256, validation_alias="API_THREADS",
        description="API worker threads: requests handled at once (a request is read whole before a thread takes it)")
    api_connection_limit: int = Field(
        default=500, ge=1, le=10_000, validation_alias="API_CONNECTION_LIMIT",
        description="open API connections at most; past it new ones wait in the listen backlog")
    lb_algorithm: str = Field(
        default="round-robin", validation_alias="LB_ALGORITHM",
        description="balancer at start: `round-robin`, `least-load`, `weighted`, `p2c`, `consistent-hash`, `random`")
    route_timeout: float = Field(
        default=5.0, gt=0, validation_alias="ROUTE_TIMEOUT", description="seconds one routed attempt may take")
    route_max_body: int = Field(
        default=10 * 1024 * 1024, gt=0, validation_alias="ROUTE_MAX_BODY_BYTES",
        description="largest body of an instance's answer a routed request (proxy, load test) reads; a larger one "
                    "is a 502 and the rest is not read; also the largest request body the traffic listener takes "
                    "(larger is 413)")
    route_retries: int = Field(
        default=2, ge=0, validation_alias="ROUTE_RETRIES",
        description="retries of an idempotent routed request after a failure")
    engine_uvloop: bool = Field(
        default=True, validation_alias="ENGINE_UVLOOP",
        description="run the engine's event loop and load-test worker processes on uvloop when it is installed; "
                    "`false`: asyncio's own loop")
    retry_budget_percent: float = Field(
        default=20.0, gt=0, validation_alias="RETRY_BUDGET_PERCENT",
        description="retries in flight at most this % of routed requests in flight")
    retry_budget_min: int = Field(
        default=3, ge=0, validation_alias="RETRY_BUDGET_MIN", description="retries always allowed in flight")
    eject_consecutive: int = Field(
        default=5, gt=0, validation_alias="EJECT_CONSECUTIVE",
        description="consecutive 5xx / connection errors that eject an instance")
    eject_base_s: float = Field(
        default=30.0, gt=0, validation_alias="EJECT_BASE_S",
        description="first ejection in seconds; the n-th lasts n times as long")
    eject_max_percent: float = Field(
        default=50.0, gt=0, le=100, validation_alias="EJECT_MAX_PERCENT",
        description="most of a service's instances ejected at once, % (one may always be)")
    max_rps: float = Field(
        default=20_000.0, gt=0, validation_alias="MAX_RPS", description="highest load-test rate accepted, requests/s")
    max_duration: float = Field(
        default=3600.0, gt=0, validation_alias="MAX_DURATION", description="longest load test accepted, seconds")
    max_users: int = Field(
        default=1000, gt=0, validation_alias="MAX_USERS",
        description="most concurrent users (requests in flight) of a load test")
    loadtest_backlog_s: float = Field(
        default=1.0, gt=0, validation_alias="LOADTEST_BACKLOG_S",
        description="a load test's backlog bound, in seconds of requests at its rate")
    loadtest_process_rps: float = Field(
        default=5000.0, gt=0, validation_alias="LOADTEST_PROCESS_RPS",
        description="rate one process generates before worker processes (one per core at most) share a run")
    memory_leak_cap_mb: int = Field(
        default=512, gt=0, validation_alias="MEMORY_LEAK_CAP_MB",
        description="most memory a memory-leak simulation holds in the engine, MB")
    simulation_max_ms: float = Field(
        default=3_600_000.0, gt=0, validation_alias="SIMULATION_MAX_MS",
        description="longest failure simulation accepted, ms (3600000 = 1 h)")
    autoscale_interval: float = Field(
        default=15.0, gt=0, validation_alias="AUTOSCALE_INTERVAL_S",
        description="seconds between autoscaler periods (15 is the Kubernetes HPA's)")
    scale_ready_timeout: float = Field(
        default=15.0, gt=0, validation_alias="SCALE_READY_TIMEOUT_S",
        description="seconds a new managed instance may take to answer its health path")
    scale_drain_timeout: float = Field(
        default=10.0, gt=0, validation_alias="SCALE_DRAIN_TIMEOUT_S",
        description="seconds scale-down waits for an instance's requests in flight")
    public_url: str | None = Field(
        default=None, pattern=r"^https?://[^\s/]+(/\S*)?$", validation_alias="PUBLIC_URL",
        description="the engine's address as a notification's reader reaches it, for the links notifications "
                    "carry; unset = `http://API_HOST:API_PORT`")
    notify_timeout: float = Field(
        default=10.0, gt=0, le=300, validation_alias="NOTIFY_TIMEOUT_S",
        description="seconds one attempt to deliver a notification may take")
    notify_backoff: float = Field(
        default=30.0, gt=0, validation_alias="NOTIFY_BACKOFF_S",
        description="seconds before a failed notification's second attempt; each later wait doubles")
    notify_backoff_max: float = Field(
        default=300.0, gt=0, validation_alias="NOTIFY_BACKOFF_MAX_S",
        description="longest wait between two attempts of a notification, seconds")
    notify_max_attempts: int = Field(
        default=6, ge=1, le=100, validation_alias="NOTIFY_MAX_ATTEMPTS",
        description="attempts before a notification is failed (6: at 0, 0.5, 1.5, 3.5, 7.5 and 12.5 min)")
    notify_queue: int = Field(
        default=200, ge=1, validation_alias="NOTIFY_QUEUE_SIZE",
        description="notifications waiting per channel; past it the oldest waiting one is failed as dropped "
                    "and counted")
    alert_interval: float = Field(
        default=2.0, ge=0.1, le=60.0, validation_alias="ALERT_INTERVAL",
        description="seconds between evaluations of the alert rules (from the engine's live state)")
    cluster_heartbeat_s: float = Field(
        default=1.0, ge=0.1, le=10.0, validation_alias="CLUSTER_HEARTBEAT_S",
        description="seconds between two heartbeats of an engine's membership row (on a connection and thread of "
                    "its own); the leader confirms its lock at each")
    cluster_lease_s: float = Field(
        default=5.0, ge=0.5, le=300.0, validation_alias="CLUSTER_LEASE_S",
        description="an engine whose last heartbeat is older than this many seconds is gone; the leader stops "
                    "acting when its lock was last confirmed half a lease ago; more than 2 x CLUSTER_HEARTBEAT_S")
    status_page_enabled: bool = Field(
        default=False, validation_alias="STATUS_PAGE_ENABLED",
        description="serve the public status page at `GET /status` (no login); `false` answers it with 404")
    status_page_services: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), validation_alias="STATUS_PAGE_SERVICES",
        description="comma-separated names of the services the status page shows, in this order; empty = all")
    status_page_title: str = Field(
        default="Service status", min_length=1, max_length=200, validation_alias="STATUS_PAGE_TITLE",
        description="the status page's heading")

    @field_validator(*_OPTIONAL, mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _any_case(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("instance_allowlist", mode="before")
    @classmethod
    def _allowlist(cls, value: Any) -> tuple[str, ...]:
        return parse_allowlist(value if isinstance(value, str) else ",".join(value))

    @field_validator("status_page_services", mode="before")
    @classmethod
    def _service_names(cls, value: Any) -> tuple[str, ...]:
        names = [n.strip() for n in (value.split(",") if isinstance(value, str) else value) if n.strip()]
        for name in names:
            if not _SERVICE_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a service name (letters, digits, '.', '_' or '-')")
        return tuple(dict.fromkeys(names))

    @field_validator("cluster_lease_s")
    @classmethod
    def _lease(cls, value: float, info: ValidationInfo) -> float:
        heartbeat = info.data.get("cluster_heartbeat_s")
        if heartbeat is not None and value <= 2 * heartbeat:
            # the leader acts until its last confirmation is lease/2 old: a heartbeat must come sooner
            raise ValueError(f"must be more than twice CLUSTER_HEARTBEAT_S ({heartbeat:g})")
        return value

    @field_validator("lb_algorithm")
    @classmethod
    def _algorithm(cls, value: str) -> str:
        names = sorted(a.value for a in Algorithm)
        if value not in names:
            raise ValueError(f"must be one of {', '.join(names)}")
        return value

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Construction takes only its arguments; the environment is read by from_env alone."""
        return (init_settings,)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read every variable in ENV_VARS (from os.environ by default); a bad value raises ConfigError naming it."""
        try:
            return cls(**_EnvSource(cls, env)())
        except ValidationError as exc:
            error = exc.errors()[0]
            raise ConfigError(str(error["loc"][0]), _problem(error)) from exc

    def replace(self, **changes: Any) -> Settings:
        """A copy with these fields changed, validated as construction is."""
        return type(self)(**{name: getattr(self, name) for name in type(self).model_fields} | changes)

    @property
    def api_base_url(self) -> str:
        """The URL the dashboard and tools use to reach the API."""
        return self.api_url or f"http://{self.api_host}:{self.api_port}"

    @property
    def public_base_url(self) -> str:
        """The engine's address in the links notifications carry (no trailing slash)."""
        return (self.public_url or f"http://{self.api_host}:{self.api_port}").rstrip("/")

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, mask_url(value) if name == "database_url" and value else value


class _EnvSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping (os.environ when None)."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str] | None) -> None:
        self._env = env
        super().__init__(settings_cls, case_sensitive=True, env_ignore_empty=False)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # the one hook the source reads variables through (DotEnvSettingsSource overrides it too); the version is pinned
        if self._env is None:
            return super()._load_env_vars()
        return parse_env_vars(self._env, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


def _problem(error: ErrorDetails) -> str:
    """A pydantic error as a short sentence about the value."""
    context = error.get("ctx") or {}
    if error["type"] == "too_short":
        return f"must be at least {context['min_length']} characters"
    return error["msg"].removeprefix("Value error, ")


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***."""
    masked = re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", url)
    return re.sub(r"(password=)[^&\s]*", r"\1***", masked)


ENV_VARS: dict[str, str] = {str(f.validation_alias): name for name, f in Settings.model_fields.items()}
"""Environment variable -> field name, in declaration order."""

SECRET_VARS: frozenset[str] = frozenset(
    str(f.validation_alias) for f in Settings.model_fields.values() if "SecretStr" in str(f.annotation))
"""The variables that hold a secret (no child process of the engine is given them)."""


def _shown(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "**********"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value) or "empty"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def effective(settings: Settings) -> list[tuple[str, str]]:
    """Each variable with the value in force, as text; secrets and the database password masked."""
    rows = []
    for variable, name in ENV_VARS.items():
        shown = _shown(getattr(settings, name))
        rows.append((variable, mask_url(shown) if name == "database_url" else shown))
    return rows


_UNIONS = (Union, type(int | None))
_TYPE_NAMES: dict[Any, str] = {
    bool: "boolean", int: "integer", float: "number", str: "text", Path: "path", SecretStr: "secret", tuple: "list",
}


def _kind(annotation: Any) -> tuple[str, str]:
    """A field's type as (name, allowed values) for the document."""
    args = [a for a in get_args(annotation) if a is not type(None)] if get_origin(annotation) in _UNIONS else []
    inner = args[0] if len(args) == 1 else annotation
    if get_origin(inner) is Literal:
        return "choice", ", ".join(get_args(inner))
    return _TYPE_NAMES[get_origin(inner) or inner], ""


def _bounds(metadata: Iterable[Any]) -> list[str]:
    signs = {Gt: ("> ", "gt"), Ge: ("≥ ", "ge"), Le: ("≤ ", "le")}
    shown = []
    for item in metadata:
        if isinstance(item, MinLen):
            shown.append(f"≥ {item.min_length} characters")
        elif type(item) in signs:
            sign, attribute = signs[type(item)]
            shown.append(sign + _shown(getattr(item, attribute)))
    return shown


def markdown() -> str:
    """docs/configuration.md: every setting's variable, type, default, bounds and meaning."""
    lines = [
        "# Configuration",
        "",
        "Every setting is an environment variable, read once at start. A bad value stops the start with a",
        "message naming the variable; an empty `DATABASE_URL`, `API_URL`, `JWT_SECRET`, `ADMIN_PASSWORD` or",
        "`PUBLIC_URL` counts as unset. `python -m engine config` prints the values in force, secrets masked.",
        "",
        "This file is generated from `contract/settings.py`:",
        "`python -m engine config --markdown > docs/configuration.md` writes it again.",
        "",
        "| variable | setting | type | default | bounds | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for variable, name in ENV_VARS.items():
        info = Settings.model_fields[name]
        kind, allowed = _kind(info.annotation)
        bounds = ", ".join([*_bounds(info.metadata), allowed] if allowed else _bounds(info.metadata))
        default = _shown(info.default)
        shown = default if default in ("unset", "empty") else f"`{default}`"
        lines.append(f"| `{variable}` | `{name}` | {kind} | {shown} "
                     f"| {bounds} | {info.description} |")
    return "\n".join(lines) + "\n"

