"""The dashboard's REST API client: the login and every button act through here; validation lives in the API."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from engine.errors import MonitorError

__all__ = [
    "DEFAULT_API_URL",
    "ApiCallFailed",
    "ApiClient",
    "api_url",
    "circuit_breakers",
    "clear_logs",
    "create_service",
    "create_user",
    "default_client",
    "delete_service",
    "delete_user",
    "health",
    "list_users",
    "load_balancer",
    "load_test_status",
    "login",
    "reset_all_breakers",
    "reset_breaker",
    "set_algorithm",
    "simulate_database_overload",
    "simulate_memory_leak",
    "simulate_network_latency",
    "simulate_service_failure",
    "start_load_test",
    "stop_all_simulations",
    "stop_load_test",
    "stop_simulation",
    "system_metrics",
    "update_breaker",
    "update_service",
]

DEFAULT_API_URL = "http://127.0.0.1:5000"
TIMEOUT_S = 10.0


class ApiCallFailed(MonitorError):
    """The API answered with an error status, or could not be reached (status None).

    `retry_after` holds the seconds of a Retry-After header (a 429), else None.
    """

    def __init__(
        self,
        status: int | None,
        error: str,
        details: Sequence[Mapping[str, Any]] | None = None,
        retry_after: int | None = None,
    ) -> None:
        self.status = status
        self.error = error
        self.details = [dict(d) for d in details or []]
        self.retry_after = retry_after
        super().__init__(f"{status or 'no response'}: {error}")

    def lines(self) -> list[str]:
        """One line per detail ("field: message"), for st.error."""
        out = []
        for d in self.details:
            field, message = d.get("field"), d.get("message")
            if field is not None and message is not None:
                out.append(f"{field}: {message}")
            else:
                out.append(", ".join(f"{k}={v}" for k, v in d.items()))
        return out

    def text(self) -> str:
        """The error and its details as markdown, for st.error."""
        head = self.error if self.status is None else f"{self.error} (HTTP {self.status})"
        return "\n".join([head, *(f"- {line}" for line in self.lines())])


class ApiClient:
    """Calls the engine's REST API; an error response raises ApiCallFailed with its `error` and `details`."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = TIMEOUT_S,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._transport = transport
        self._timeout = timeout

    def request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """Send one request; return the decoded JSON of a 2xx answer."""
        # trust_env=False: a proxy variable must not divert calls to our own loopback API
        with httpx.Client(
            base_url=self.base_url, headers=self._headers, timeout=self._timeout, trust_env=False,
            transport=self._transport,
        ) as client:
            try:
                response = client.request(method, path, json=body)
            except httpx.HTTPError as exc:
                raise ApiCallFailed(None, f"the API at {self.base_url} is not reachable ({exc})") from exc
        if response.is_success:
            return response.json() if response.content else None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if isinstance(payload, dict):
            error = str(payload.get("error") or response.reason_phrase)
            raw = payload.get("details")
            details = [d for d in raw if isinstance(d, dict)] if isinstance(raw, list) else []
        else:
            error, details = response.reason_phrase or "error", []
        raise ApiCallFailed(response.status_code, error, details, _retry_after(response))

    def login(self, username: str, password: str) -> dict[str, Any]:
        """POST /api/auth/token: {token, expiresAt, role}; wrong credentials are a 401, too many tries a 429."""
        result: dict[str, Any] = self.request("POST", "/api/auth/token", {"username": username, "password": password})
        return result

    def create_service(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /api/services: the created service."""
        result: dict[str, Any] = self.request("POST", "/api/services", body)
        return result

    def update_service(self, service_id: int, body: Mapping[str, Any]) -> dict[str, Any]:
        """PUT /api/services/<id>: the updated service."""
        result: dict[str, Any] = self.request("PUT", f"/api/services/{service_id}", body)
        return result

    def delete_service(self, service_id: int) -> dict[str, Any]:
        """DELETE /api/services/<id>: {message, id}."""
        result: dict[str, Any] = self.request("DELETE", f"/api/services/{service_id}")
        return result

    def clear_logs(self) -> dict[str, Any]:
        """DELETE /api/logs: {message, deleted}."""
        result: dict[str, Any] = self.request("DELETE", "/api/logs")
        return result

    def list_users(self) -> list[dict[str, Any]]:
        """GET /api/users (admin): [{id, username, role, createdAt}]."""
        result: list[dict[str, Any]] = self.request("GET", "/api/users")
        return result

    def create_user(self, username: str, password: str, role: str) -> dict[str, Any]:
        """POST /api/users (admin): the created user."""
        body = {"username": username, "password": password, "role": role}
        result: dict[str, Any] = self.request("POST", "/api/users", body)
        return result

    def delete_user(self, user_id: int) -> dict[str, Any]:
        """DELETE /api/users/<id> (admin): {message, id}."""
        result: dict[str, Any] = self.request("DELETE", f"/api/users/{user_id}")
        return result

    def load_balancer(self) -> dict[str, Any]:
        """GET /api/load-balancer: {algorithm, algorithms, totalPicks, instances}."""
        result: dict[str, Any] = self.request("GET", "/api/load-balancer")
        return result

    def set_algorithm(self, algorithm: str) -> dict[str, Any]:
        """PUT /api/load-balancer: the balancer state after the switch (an unknown name is a 400)."""
        result: dict[str, Any] = self.request("PUT", "/api/load-balancer", {"algorithm": algorithm})
        return result

    def circuit_breakers(self) -> dict[str, Any]:
        """GET /api/circuit-breakers: {total, closed, open, halfOpen, breakers}."""
        result: dict[str, Any] = self.request("GET", "/api/circuit-breakers")
        return result

    def update_breaker(self, service_name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """PUT /api/circuit-breakers/<name>: the breaker with its new thresholds."""
        result: dict[str, Any] = self.request("PUT", f"/api/circuit-breakers/{quote(service_name, safe='')}", body)
        return result

    def reset_breaker(self, service_name: str) -> dict[str, Any]:
        """POST /api/circuit-breakers/<name>/reset: the breaker, CLOSED."""
        result: dict[str, Any] = self.request("POST", f"/api/circuit-breakers/{quote(service_name, safe='')}/reset")
        return result

    def reset_all_breakers(self) -> dict[str, Any]:
        """POST /api/circuit-breakers/reset-all: {message}."""
        result: dict[str, Any] = self.request("POST", "/api/circuit-breakers/reset-all")
        return result

    def system_metrics(self) -> dict[str, Any]:
        """GET /api/metrics: the seed's SystemMetrics (resilience, loadBalancer, circuitBreakers, ...)."""
        result: dict[str, Any] = self.request("GET", "/api/metrics")
        return result

    def start_load_test(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /api/load-test/start: the new run's status (202); 409 while one runs, 422 for bad input."""
        result: dict[str, Any] = self.request("POST", "/api/load-test/start", body)
        return result

    def stop_load_test(self) -> dict[str, Any]:
        """POST /api/load-test/stop: the run's final status; 409 when none runs."""
        result: dict[str, Any] = self.request("POST", "/api/load-test/stop")
        return result

    def load_test_status(self) -> dict[str, Any]:
        """GET /api/load-test/status: the running or latest run, live ({status: "idle"} before any)."""
        result: dict[str, Any] = self.request("GET", "/api/load-test/status")
        return result

    def health(self) -> dict[str, Any]:
        """GET /api/health: engine, database and write path (writer.writeLatencyMs), active simulations."""
        result: dict[str, Any] = self.request("GET", "/api/health")
        return result

    def simulate_service_failure(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /api/simulate/service-failure: the simulation (201); 409 same kind on the service, or kill of an
        external service."""
        result: dict[str, Any] = self.request("POST", "/api/simulate/service-failure", body)
        return result

    def simulate_network_latency(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /api/simulate/network-latency: the simulation (201); 409 when one is active on the same target."""
        result: dict[str, Any] = self.request("POST", "/api/simulate/network-latency", body)
        return result

    def simulate_database_overload(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /api/simulate/database-overload: the simulation (201); 409 while one is active."""
        result: dict[str, Any] = self.request("POST", "/api/simulate/database-overload", body)
        return result

    def simulate_memory_leak(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /api/simulate/memory-leak: the simulation (201); 409 while one is active."""
        result: dict[str, Any] = self.request("POST", "/api/simulate/memory-leak", body)
        return result

    def stop_simulation(self, simulation_id: int) -> dict[str, Any]:
        """POST /api/simulations/<id>/stop: the ended simulation with its effect; 404 unknown, 409 not active."""
        result: dict[str, Any] = self.request("POST", f"/api/simulations/{int(simulation_id)}/stop")
        return result

    def stop_all_simulations(self) -> dict[str, Any]:
        """POST /api/simulate/stop-all: {message, stopped}."""
        result: dict[str, Any] = self.request("POST", "/api/simulate/stop-all")
        return result


def _retry_after(response: httpx.Response) -> int | None:
    """Whole seconds from a Retry-After header given in seconds; None if absent or a date."""
    raw = response.headers.get("Retry-After", "").strip()
    return int(raw) if raw.isdigit() else None


def api_url() -> str:
    """Where the API is: env API_URL, else the engine's default address."""
    return os.environ.get("API_URL") or DEFAULT_API_URL


def default_client(token: str | None = None) -> ApiClient:
    """A client for the API at api_url(), sending `token`, else the logged-in session's token."""
    from ui import session  # late: ui.session imports this module for the login form

    return ApiClient(api_url(), token=token if token is not None else session.token())


def login(username: str, password: str) -> dict[str, Any]:
    """Exchange credentials for a token (no token sent)."""
    return ApiClient(api_url()).login(username, password)


def create_service(body: Mapping[str, Any]) -> dict[str, Any]:
    """Register a service through the API."""
    return default_client().create_service(body)


def update_service(service_id: int, body: Mapping[str, Any]) -> dict[str, Any]:
    """Change a service through the API."""
    return default_client().update_service(service_id, body)


def delete_service(service_id: int) -> dict[str, Any]:
    """Deregister a service through the API."""
    return default_client().delete_service(service_id)


def clear_logs() -> dict[str, Any]:
    """Delete every log row through the API."""
    return default_client().clear_logs()


def list_users() -> list[dict[str, Any]]:
    """Every user (admin)."""
    return default_client().list_users()


def create_user(username: str, password: str, role: str) -> dict[str, Any]:
    """Add a user (admin)."""
    return default_client().create_user(username, password, role)


def delete_user(user_id: int) -> dict[str, Any]:
    """Remove a user (admin)."""
    return default_client().delete_user(user_id)


def load_balancer() -> dict[str, Any]:
    """The live balancer state."""
    return default_client().load_balancer()


def set_algorithm(algorithm: str) -> dict[str, Any]:
    """Switch the balancer algorithm (operator)."""
    return default_client().set_algorithm(algorithm)


def circuit_breakers() -> dict[str, Any]:
    """Every registered service's breaker, with counts by state."""
    return default_client().circuit_breakers()


def update_breaker(service_name: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """Change a breaker's thresholds (operator)."""
    return default_client().update_breaker(service_name, body)


def reset_breaker(service_name: str) -> dict[str, Any]:
    """Close one breaker (operator)."""
    return default_client().reset_breaker(service_name)


def reset_all_breakers() -> dict[str, Any]:
    """Close every breaker (operator)."""
    return default_client().reset_all_breakers()


def system_metrics() -> dict[str, Any]:
    """The seed's SystemMetrics."""
    return default_client().system_metrics()


def start_load_test(body: Mapping[str, Any]) -> dict[str, Any]:
    """Start a load test (operator)."""
    return default_client().start_load_test(body)


def stop_load_test() -> dict[str, Any]:
    """Stop the running load test (operator)."""
    return default_client().stop_load_test()


def load_test_status() -> dict[str, Any]:
    """The running or latest load test, live from the engine."""
    return default_client().load_test_status()


def health() -> dict[str, Any]:
    """The engine's health, write latency and active simulation count (no token needed)."""
    return default_client().health()


def simulate_service_failure(body: Mapping[str, Any]) -> dict[str, Any]:
    """Fail a service's requests, or kill one of its instances (operator)."""
    return default_client().simulate_service_failure(body)


def simulate_network_latency(body: Mapping[str, Any]) -> dict[str, Any]:
    """Delay requests to a service, or to every service (operator)."""
    return default_client().simulate_network_latency(body)


def simulate_database_overload(body: Mapping[str, Any]) -> dict[str, Any]:
    """Busy the engine's database (operator)."""
    return default_client().simulate_database_overload(body)


def simulate_memory_leak(body: Mapping[str, Any]) -> dict[str, Any]:
    """Allocate memory in the engine at a rate (operator)."""
    return default_client().simulate_memory_leak(body)


def stop_simulation(simulation_id: int) -> dict[str, Any]:
    """End one active simulation now (operator)."""
    return default_client().stop_simulation(simulation_id)


def stop_all_simulations() -> dict[str, Any]:
    """End every active simulation now (operator)."""
    return default_client().stop_all_simulations()
