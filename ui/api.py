"""The dashboard's REST API client: the login and every button act through here; validation lives in the API."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from contract.errors import MonitorError

__all__ = [
    "DEFAULT_API_URL", "ApiCallFailed", "ApiClient", "api_url", "circuit_breakers", "clear_logs", "create_service",
    "create_user", "default_client", "delete_service", "delete_user", "health", "list_users", "load_balancer",
    "load_test_status", "login", "reset_all_breakers", "reset_breaker", "scale_down", "scale_up", "scaling",
    "set_algorithm", "set_autoscaler", "simulate_database_overload", "simulate_memory_leak", "simulate_network_latency",
    "simulate_service_failure", "start_load_test", "stop_all_simulations", "stop_load_test", "stop_simulation",
    "system_metrics", "update_breaker", "update_service",
]

DEFAULT_API_URL = "http://127.0.0.1:5000"
TIMEOUT_S = 10.0
# a scale-up waits for the new instance to be healthy (SCALE_READY_TIMEOUT_S, 15 s by default) and a scale-down
# for in-flight requests to finish (SCALE_DRAIN_TIMEOUT_S, 10 s) and the process to stop (5 s grace)
SCALE_TIMEOUT_S = 40.0


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

    def request(self, method: str, path: str, body: Mapping[str, Any] | None = None, accept: tuple[int, ...] = (),
                ) -> Any:
        """Send one request; return the decoded JSON of a 2xx answer, or of one whose status is in `accept`."""
        # trust_env=False: a proxy variable must not divert calls to our own loopback API
        with httpx.Client(
            base_url=self.base_url, headers=self._headers, timeout=self._timeout, trust_env=False,
            transport=self._transport,
        ) as client:
            try:
                response = client.request(method, path, json=body)
            except httpx.HTTPError as exc:
                raise ApiCallFailed(None, f"the API at {self.base_url} is not reachable ({exc})") from exc
        if response.is_success or response.status_code in accept:
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

    def _object(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """request() whose answer is a JSON object."""
        result: dict[str, Any] = self.request(method, path, body)
        return result

    def _list(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """request() whose answer is a JSON array of objects."""
        result: list[dict[str, Any]] = self.request(method, path, body)
        return result

    def login(self, username: str, password: str) -> dict[str, Any]:
        """POST /api/auth/token: {token, expiresAt, role}; wrong credentials are a 401, too many tries a 429."""
        return self._object("POST", "/api/auth/token", {"username": username, "password": password})

    def create_service(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /api/services: the created service."""
        return self._object("POST", "/api/services", body)

    def update_service(self, service_id: int, body: Mapping[str, Any]) -> dict[str, Any]:
        """PUT /api/services/<id>: the updated service."""
        return self._object("PUT", f"/api/services/{service_id}", body)

    def delete_service(self, service_id: int) -> dict[str, Any]:
        """DELETE /api/services/<id>: {message, id}."""
        return self._object("DELETE", f"/api/services/{service_id}")

    def clear_logs(self) -> dict[str, Any]:
        """DELETE /api/logs: {message, deleted}."""
        return self._object("DELETE", "/api/logs")

    def list_users(self) -> list[dict[str, Any]]:
        """GET /api/users (admin): [{id, username, role, createdAt}]."""
        return self._list("GET", "/api/users")

    def create_user(self, username: str, password: str, role: str) -> dict[str, Any]:
        """POST /api/users (admin): the created user."""
        body = {"username": username, "password": password, "role": role}
        return self._object("POST", "/api/users", body)

    def delete_user(self, user_id: int) -> dict[str, Any]:
        """DELETE /api/users/<id> (admin): {message, id}."""
        return self._object("DELETE", f"/api/users/{user_id}")

    def load_balancer(self) -> dict[str, Any]:
        """GET /api/load-balancer: {algorithm, algorithms, totalPicks, instances}."""
        return self._object("GET", "/api/load-balancer")

    def set_algorithm(self, algorithm: str) -> dict[str, Any]:
        """PUT /api/load-balancer: the balancer state after the switch (an unknown name is a 400)."""
        return self._object("PUT", "/api/load-balancer", {"algorithm": algorithm})

    def circuit_breakers(self) -> dict[str, Any]:
        """GET /api/circuit-breakers: {total, closed, open, halfOpen, breakers}."""
        return self._object("GET", "/api/circuit-breakers")

    def update_breaker(self, service_name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """PUT /api/circuit-breakers/<name>: the breaker with its new thresholds."""
        return self._object("PUT", f"/api/circuit-breakers/{quote(service_name, safe='')}", body)

    def reset_breaker(self, service_name: str) -> dict[str, Any]:
        """POST /api/circuit-breakers/<name>/reset: the breaker, CLOSED."""
        return self._object("POST", f"/api/circuit-breakers/{quote(service_name, safe='')}/reset")

    def reset_all_breakers(self) -> dict[str, Any]:
        """POST /api/circuit-breakers/reset-all: {message}."""
        return self._object("POST", "/api/circuit-breakers/reset-all")

    def system_metrics(self) -> dict[str, Any]:
        """GET /api/metrics: the seed's SystemMetrics (resilience, loadBalancer, circuitBreakers, ...)."""
        return self._object("GET", "/api/metrics")

    def start_load_test(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /api/load-test/start: the new run's status (202); 409 while one runs, 422 for bad input."""
        return self._object("POST", "/api/load-test/start", body)

    def stop_load_test(self) -> dict[str, Any]:
        """POST /api/load-test/stop: the run's final status; 409 when none runs."""
        return self._object("POST", "/api/load-test/stop")

    def load_test_status(self) -> dict[str, Any]:
        """GET /api/load-test/status: the running or latest run, live ({status: "idle"} before any)."""
        return self._object("GET", "/api/load-test/status")

    def health(self) -> dict[str, Any]:
        """GET /api/health: engine, database, write path (writer.writeLatencyMs), simulations; also the 503's body."""
        result: dict[str, Any] = self.request("GET", "/api/health", accept=(503,))
        return result

    def simulate_service_failure(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /api/simulate/service-failure: the simulation (201); 409 same kind on the service, or kill of an
        external service."""
        return self._object("POST", "/api/simulate/service-failure", body)

    def simulate_network_latency(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /api/simulate/network-latency: the simulation (201); 409 when one is active on the same target."""
        return self._object("POST", "/api/simulate/network-latency", body)

    def simulate_database_overload(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /api/simulate/database-overload: the simulation (201); 409 while one is active."""
        return self._object("POST", "/api/simulate/database-overload", body)

    def simulate_memory_leak(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /api/simulate/memory-leak: the simulation (201); 409 while one is active."""
        return self._object("POST", "/api/simulate/memory-leak", body)

    def stop_simulation(self, simulation_id: int) -> dict[str, Any]:
        """POST /api/simulations/<id>/stop: the ended simulation with its effect; 404 unknown, 409 not active."""
        return self._object("POST", f"/api/simulations/{int(simulation_id)}/stop")

    def stop_all_simulations(self) -> dict[str, Any]:
        """POST /api/simulate/stop-all: {message, stopped}."""
        return self._object("POST", "/api/simulate/stop-all")

    def scaling(self) -> dict[str, Any]:
        """GET /api/scaling: {totalInstances, services: [{id, name, instanceCount, load, canScaleUp, ...}]}."""
        return self._object("GET", "/api/scaling")

    def scale(self, service_id: int, direction: str) -> dict[str, Any]:
        """POST /api/services/<id>/scale-up or -down: {message, newInstanceCount}; 409 at a bound, for an external
        service or while another action on it runs; 503 when a new instance does not become healthy."""
        return self._object("POST", f"/api/services/{int(service_id)}/scale-{direction}")

    def set_autoscaler(self, service_id: int, body: Mapping[str, Any]) -> dict[str, Any]:
        """PUT /api/services/<id>/autoscaler: the settings now in force; 422 names a bad field."""
        return self._object("PUT", f"/api/services/{int(service_id)}/autoscaler", body)


def _retry_after(response: httpx.Response) -> int | None:
    """Whole seconds from a Retry-After header given in seconds; None if absent or a date."""
    raw = response.headers.get("Retry-After", "").strip()
    return int(raw) if raw.isdigit() else None


def api_url() -> str:
    """Where the API is: env API_URL, else the engine's default address."""
    return os.environ.get("API_URL") or DEFAULT_API_URL


def default_client(token: str | None = None, timeout: float = TIMEOUT_S) -> ApiClient:
    """A client for the API at api_url(), sending `token`, else the logged-in session's token."""
    from ui import session  # late: ui.session imports this module for the login form

    return ApiClient(api_url(), token=token if token is not None else session.token(), timeout=timeout)


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


def scaling() -> dict[str, Any]:
    """Instances, load (in flight) and scaling room per service, live from the engine."""
    return default_client().scaling()


def scale_up(service_id: int) -> dict[str, Any]:
    """Start one more instance of a managed service and wait until it is healthy (operator)."""
    return default_client(timeout=SCALE_TIMEOUT_S).scale(service_id, "up")


def scale_down(service_id: int) -> dict[str, Any]:
    """Drain and stop one instance of a managed service (operator)."""
    return default_client(timeout=SCALE_TIMEOUT_S).scale(service_id, "down")


def set_autoscaler(service_id: int, body: Mapping[str, Any]) -> dict[str, Any]:
    """Turn a managed service's autoscaler on or off, with its settings and instance bounds (operator)."""
    return default_client().set_autoscaler(service_id, body)
