"""Settings: one frozen dataclass read from the environment in one place."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from contract.errors import ConfigError

__all__ = ["ENV_VARS", "Settings"]

T = TypeVar("T")

# variable name -> (field, parser, help); README's table is written from this.
ENV_VARS: dict[str, tuple[str, str]] = {
    "DATABASE_URL": ("database_url", "PostgreSQL URL; unset = embedded PostgreSQL under DATA_DIR"),
    "DATA_DIR": ("data_dir", "where the embedded PostgreSQL keeps its data (default ./data)"),
    "API_HOST": ("api_host", "address the REST API binds (default 127.0.0.1)"),
    "API_PORT": ("api_port", "REST API port (default 5000)"),
    "API_URL": ("api_url", "where the dashboard finds the API (default http://API_HOST:API_PORT)"),
    "DASHBOARD_PORT": ("dashboard_port", "Streamlit port (default 8501)"),
    "HEALTH_INTERVAL": ("health_interval", "seconds between health checks of every instance (default 5)"),
    "HEALTH_TIMEOUT": ("health_timeout", "seconds before a check counts as a timeout (default 2)"),
    "HEALTH_DEGRADED_MS": ("degraded_ms", "a 2xx slower than this many ms is degraded (default 1000)"),
    "HEALTH_FALL": ("fall", "consecutive worse results before an instance's state worsens (default 2)"),
    "HEALTH_RISE": ("rise", "consecutive better results before an instance's state improves (default 2)"),
    "HEALTH_CONCURRENCY": ("health_concurrency", "checks in flight at once (default 50)"),
    "COLLECT_INTERVAL": ("collect_interval", "metrics bucket length in seconds (default 5)"),
    "WRITER_FLUSH_INTERVAL": ("flush_interval", "seconds between batch writes (default 0.5)"),
    "WRITER_MAX_BUFFER": ("writer_max_buffer", "events buffered while the DB is slow; oldest dropped (10000)"),
    "WRITER_BATCH_ROWS": ("writer_batch_rows", "rows per write; a batch this big is written at once (default 10000)"),
    "METRICS_RETENTION_DAYS": (
        "retention_days", "days of metrics (daily partitions, rollup) and logs kept; older is dropped (default 7)",
    ),
    "PARTITIONS_AHEAD": ("partitions_ahead", "daily metric partitions created ahead of today (default 2)"),
    "MAINTENANCE_INTERVAL_S": (
        "maintenance_interval", "seconds between partition upkeep and retention runs (default 3600)",
    ),
    "DEMO_PORT_BASE": ("demo_port_base", "first loopback port tried for demo instances (default 7100)"),
    "DEMO_SEED": ("demo_seed", "seed of the demo services' latency model (default 42)"),
    "LOG_LEVEL": ("log_level", "console log level (default INFO)"),
    "JWT_SECRET": ("jwt_secret", "HS256 secret, 32+ characters; unset = generated once into DATA_DIR/jwt_secret"),
    "TOKEN_TTL": ("token_ttl", "seconds a token stays valid (default 28800 = 8 h)"),
    "ADMIN_PASSWORD": ("admin_password", "password of the first admin; unset = generated, printed once"),
    "RATE_LIMIT_PER_S": ("rate_limit", "API requests per second per user or client address (default 20)"),
    "RATE_LIMIT_BURST": ("rate_burst", "requests allowed at once before the rate applies (default 100)"),
    "PROXY_RATE_LIMIT_PER_S": ("proxy_rate_limit", "/proxy requests per second per user or address (default 1000)"),
    "PROXY_RATE_LIMIT_BURST": ("proxy_rate_burst", "/proxy requests allowed at once (default 2000)"),
    "LOGIN_ATTEMPTS": ("login_attempts", "failed logins allowed per client address before 429 (default 10)"),
    "LOGIN_REFILL_S": ("login_refill", "seconds to earn back one failed-login attempt (default 60)"),
    "MAX_BODY_BYTES": ("max_body_bytes", "largest request body accepted; larger is 413 (default 65536)"),
    "LB_ALGORITHM": ("lb_algorithm", "balancer at start (default round-robin; see GET /api/load-balancer)"),
    "ROUTE_TIMEOUT": ("route_timeout", "seconds a routed request may take per attempt (default 5)"),
    "ROUTE_RETRIES": ("route_retries", "retries of an idempotent routed request after a failure (default 2)"),
    "RETRY_BUDGET_PERCENT": ("retry_budget_percent", "retries in flight at most this % of requests in flight (20)"),
    "RETRY_BUDGET_MIN": ("retry_budget_min", "retries always allowed in flight whatever the percentage (default 3)"),
    "EJECT_CONSECUTIVE": ("eject_consecutive", "consecutive 5xx/connection errors that eject an instance (default 5)"),
    "EJECT_BASE_S": ("eject_base_s", "first ejection length in seconds; the n-th lasts n times as long (default 30)"),
    "EJECT_MAX_PERCENT": ("eject_max_percent", "most of a service's instances ejected at once, % (default 50)"),
    "MAX_RPS": ("max_rps", "highest load-test rate accepted, requests/s (default 20000)"),
    "MAX_DURATION": ("max_duration", "longest load test accepted, seconds (default 3600)"),
    "MAX_USERS": ("max_users", "most concurrent users (requests in flight) of a load test (default 1000)"),
    "LOADTEST_BACKLOG_S": ("loadtest_backlog_s", "load-test backlog bound, in seconds of requests (default 1)"),
    "LOADTEST_PROCESS_RPS": (
        "loadtest_process_rps",
        "rate one process generates before worker processes (one per core) share a load test (default 5000)",
    ),
    "MEMORY_LEAK_CAP_MB": ("memory_leak_cap_mb", "most memory a memory-leak simulation holds, MB (default 512)"),
    "SIMULATION_MAX_MS": ("simulation_max_ms", "longest failure simulation accepted, ms (default 3600000 = 1 h)"),
    "AUTOSCALE_INTERVAL_S": ("autoscale_interval", "seconds between autoscaler decisions (default 15, the HPA's)"),
    "SCALE_READY_TIMEOUT_S": ("scale_ready_timeout", "seconds a new managed instance has to get healthy (default 15)"),
    "SCALE_DRAIN_TIMEOUT_S": ("scale_drain_timeout", "seconds scale-down waits for in-flight requests (default 10)"),
    "INSTANCE_ALLOWLIST": (
        "instance_allowlist",
        "comma-separated hosts or CIDRs instances may use; * = any (default: loopback only)",
    ),
}


def _positive(parse: Callable[[str], T]) -> Callable[[str], T]:
    def check(raw: str) -> T:
        value = parse(raw)
        if value <= 0:  # type: ignore[operator]
            raise ValueError("must be greater than 0")
        return value

    return check


def _port(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= 65535:
        raise ValueError("must be a port number 1..65535")
    return value


def _level(raw: str) -> str:
    value = raw.upper()
    if value not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
    return value


def _secret(raw: str) -> str:
    if len(raw) < 32:
        raise ValueError("must be at least 32 characters")
    return raw


def _password(raw: str) -> str:
    if len(raw) < 8:
        raise ValueError("must be at least 8 characters")
    return raw


def _allowlist(raw: str) -> tuple[str, ...]:
    from engine.security.ssrf import parse_allowlist

    return parse_allowlist(raw)


def _algorithm(raw: str) -> str:
    from engine.traffic.balancer import ALGORITHMS

    if raw not in ALGORITHMS:
        raise ValueError(f"must be one of {', '.join(sorted(ALGORITHMS))}")
    return raw


def _non_negative(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def _percent(raw: str) -> float:
    value = float(raw)
    if not 0 < value <= 100:
        raise ValueError("must be a percentage in (0, 100]")
    return value


_PARSERS: dict[str, Callable[[str], Any]] = {
    "database_url": str,
    "data_dir": Path,
    "api_host": str,
    "api_port": _port,
    "api_url": str,
    "dashboard_port": _port,
    "health_interval": _positive(float),
    "health_timeout": _positive(float),
    "degraded_ms": _positive(float),
    "fall": _positive(int),
    "rise": _positive(int),
    "health_concurrency": _positive(int),
    "collect_interval": _positive(float),
    "flush_interval": _positive(float),
    "writer_max_buffer": _positive(int),
    "writer_batch_rows": _positive(int),
    "retention_days": _positive(int),
    "partitions_ahead": _non_negative,
    "maintenance_interval": _positive(float),
    "demo_port_base": _port,
    "demo_seed": int,
    "log_level": _level,
    "jwt_secret": _secret,
    "token_ttl": _positive(float),
    "admin_password": _password,
    "rate_limit": _positive(float),
    "rate_burst": _positive(int),
    "proxy_rate_limit": _positive(float),
    "proxy_rate_burst": _positive(int),
    "login_attempts": _positive(int),
    "login_refill": _positive(float),
    "max_body_bytes": _positive(int),
    "instance_allowlist": _allowlist,
    "lb_algorithm": _algorithm,
    "route_timeout": _positive(float),
    "route_retries": _non_negative,
    "retry_budget_percent": _positive(float),
    "retry_budget_min": _non_negative,
    "eject_consecutive": _positive(int),
    "eject_base_s": _positive(float),
    "eject_max_percent": _percent,
    "max_rps": _positive(float),
    "max_duration": _positive(float),
    "max_users": _positive(int),
    "loadtest_backlog_s": _positive(float),
    "loadtest_process_rps": _positive(float),
    "memory_leak_cap_mb": _positive(int),
    "simulation_max_ms": _positive(float),
    "autoscale_interval": _positive(float),
    "scale_ready_timeout": _positive(float),
    "scale_drain_timeout": _positive(float),
}


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with the defaults a fresh machine runs on."""

    database_url: str | None = None
    data_dir: Path = Path("data")
    api_host: str = "127.0.0.1"
    api_port: int = 5000
    api_url: str | None = None
    dashboard_port: int = 8501
    health_interval: float = 5.0
    health_timeout: float = 2.0
    degraded_ms: float = 1000.0
    fall: int = 2
    rise: int = 2
    health_concurrency: int = 50
    collect_interval: float = 5.0
    flush_interval: float = 0.5
    writer_max_buffer: int = 10_000
    writer_batch_rows: int = 10_000
    retention_days: int = 7
    partitions_ahead: int = 2
    maintenance_interval: float = 3600.0
    demo_port_base: int = 7100
    demo_seed: int = 42
    log_level: str = "INFO"
    jwt_secret: str | None = field(default=None, repr=False)
    token_ttl: float = 8 * 3600.0
    admin_password: str | None = field(default=None, repr=False)
    rate_limit: float = 20.0
    rate_burst: int = 100
    proxy_rate_limit: float = 1000.0
    proxy_rate_burst: int = 2000
    login_attempts: int = 10
    login_refill: float = 60.0
    max_body_bytes: int = 65_536
    instance_allowlist: tuple[str, ...] = ("127.0.0.0/8", "::1/128", "localhost")
    lb_algorithm: str = "round-robin"
    route_timeout: float = 5.0
    route_retries: int = 2
    retry_budget_percent: float = 20.0
    retry_budget_min: int = 3
    eject_consecutive: int = 5
    eject_base_s: float = 30.0
    eject_max_percent: float = 50.0
    max_rps: float = 20_000.0
    max_duration: float = 3600.0
    max_users: int = 1000
    loadtest_backlog_s: float = 1.0
    loadtest_process_rps: float = 5000.0
    memory_leak_cap_mb: int = 512
    simulation_max_ms: float = 3_600_000.0
    autoscale_interval: float = 15.0
    scale_ready_timeout: float = 15.0
    scale_drain_timeout: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read every variable in ENV_VARS; a bad value raises ConfigError naming it."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for variable, (name, _help) in ENV_VARS.items():
            raw = env.get(variable)
            if raw is None or (raw == "" and name in {"database_url", "api_url", "jwt_secret", "admin_password"}):
                continue
            try:
                values[name] = _PARSERS[name](raw)
            except ValueError as exc:
                raise ConfigError(variable, str(exc)) from exc
        return cls(**values)

    @property
    def api_base_url(self) -> str:
        """The URL the dashboard and tools use to reach the API."""
        return self.api_url or f"http://{self.api_host}:{self.api_port}"


assert {f.name for f in fields(Settings)} == set(_PARSERS), "every setting needs a parser"
