"""The HTTP client of the engine's REST API: every answer is validated into its contract model, and an error
answer raises ApiCallFailed with the API's `error` and `details`."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from contract.audit import AuditEntryOut
from contract.chaos import SimulationOut, StopAllOut
from contract.errors import MonitorError
from contract.history import CheckOut, UptimeOut
from contract.loadtest import LoadTestOut
from contract.responses import (
    DeletedOut,
    HealthOut,
    LogsClearedOut,
    MessageOut,
    ServiceOut,
    SystemMetricsOut,
    TokenOut,
    UserOut,
)
from contract.scaling import AutoscalerOut, ScaleOut, ScalingOut
from contract.traffic import BreakerOut, BreakersOut, LoadBalancerOut
from ui.alerting_client import AlertingCalls
from ui.experiments_client import ExperimentCalls

__all__ = ["TIMEOUT_S", "ApiCallFailed", "ApiClient", "plain"]

TIMEOUT_S = 10.0
M = TypeVar("M", bound=BaseModel)


class ApiCallFailed(MonitorError):
    """The API answered with an error status or an answer outside the contract, or could not be reached (status
    None).

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


def plain(part: BaseModel | Mapping[str, Any] | None) -> dict[str, Any]:
    """A free-form part of an answer as a JSON dict, whether the contract types it as a dict or as a model
    ({} for None)."""
    if part is None:
        return {}
    if isinstance(part, BaseModel):
        return part.model_dump(mode="json", by_alias=True)
    return dict(part)


class ApiClient(AlertingCalls, ExperimentCalls):
    """Calls the engine's REST API; an error response raises ApiCallFailed with its `error` and `details`.

    The alerting, notification, incident and SLO calls come from ui.alerting_client.AlertingCalls, the experiment
    calls from ui.experiments_client.ExperimentCalls."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = TIMEOUT_S,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {**(headers or {}), **({"Authorization": f"Bearer {token}"} if token else {})}
        self._transport = transport
        self._timeout = timeout

    def _send(self, method: str, path: str, body: Mapping[str, Any] | None, accept: tuple[int, ...],
              params: Mapping[str, Any] | None = None) -> tuple[int, Any]:
        """Send one request; the status and decoded JSON of a 2xx answer, or of one whose status is in `accept`.

        `params` is the query string: None values are left out, booleans sent as true/false."""
        response = self._respond(method, path, body, params)
        if response.is_success or response.status_code in accept:
            return response.status_code, response.json() if response.content else None
        raise _failure(response)

    def _respond(self, method: str, path: str, body: Mapping[str, Any] | None,
                 params: Mapping[str, Any] | None, headers: Mapping[str, str] | None = None) -> httpx.Response:
        """The API's answer, whatever its status; ApiCallFailed (status None) when it could not be reached."""
        # trust_env=False: a proxy variable must not divert calls to our own loopback API
        with httpx.Client(
            base_url=self.base_url, headers=self._headers, timeout=self._timeout, trust_env=False,
            transport=self._transport,
        ) as client:
            try:
                return client.request(method, path, json=body, params=_query(params), headers=headers)
            except httpx.HTTPError as exc:
                raise ApiCallFailed(None, f"the API at {self.base_url} is not reachable ({exc})") from exc

    def text(self, path: str, params: Mapping[str, Any] | None = None, accept: str | None = None) -> str:
        """GET a text answer (a CSV, a report) as it came, asking for the media type `accept`; an error status raises
        ApiCallFailed."""
        response = self._respond("GET", path, None, params, None if accept is None else {"Accept": accept})
        if not response.is_success:
            raise _failure(response)
        return response.text

    def request(self, method: str, path: str, body: Mapping[str, Any] | None = None, accept: tuple[int, ...] = (),
                ) -> Any:
        """Send one request; return the decoded JSON of a 2xx answer, or of one whose status is in `accept`."""
        return self._send(method, path, body, accept)[1]

    def _call(self, model: type[M], method: str, path: str, body: Mapping[str, Any] | None = None,
              accept: tuple[int, ...] = (), params: Mapping[str, Any] | None = None) -> M:
        """request() whose answer is one `model`."""
        status, payload = self._send(method, path, body, accept, params)
        try:
            return model.model_validate(payload)
        except ValidationError as exc:
            raise _mismatch(exc, status, f"{method} {path}") from exc

    def _list(self, model: type[M], method: str, path: str, params: Mapping[str, Any] | None = None) -> list[M]:
        """request() whose answer is a list of `model`."""
        status, payload = self._send(method, path, None, (), params)
        try:
            result: list[M] = _list_of(model).validate_python(payload)
        except ValidationError as exc:
            raise _mismatch(exc, status, f"{method} {path}") from exc
        return result

    def login(self, username: str, password: str) -> TokenOut:
        """POST /api/auth/token; wrong credentials are a 401, too many tries a 429."""
        return self._call(TokenOut, "POST", "/api/auth/token", {"username": username, "password": password})

    def logout(self) -> MessageOut:
        """POST /api/auth/logout: every token of this user ends."""
        return self._call(MessageOut, "POST", "/api/auth/logout")

    def change_password(self, current: str, new: str) -> TokenOut:
        """PUT /api/auth/password: a fresh token; the user's other tokens end (a wrong current password is 403)."""
        return self._call(TokenOut, "PUT", "/api/auth/password", {"currentPassword": current, "newPassword": new})

    def create_service(self, body: Mapping[str, Any]) -> ServiceOut:
        """POST /api/services: the created service."""
        return self._call(ServiceOut, "POST", "/api/services", body)

    def update_service(self, service_id: int, body: Mapping[str, Any]) -> ServiceOut:
        """PUT /api/services/<id>: the updated service."""
        return self._call(ServiceOut, "PUT", f"/api/services/{service_id}", body)

    def delete_service(self, service_id: int) -> DeletedOut:
        """DELETE /api/services/<id>."""
        return self._call(DeletedOut, "DELETE", f"/api/services/{service_id}")

    def clear_logs(self) -> LogsClearedOut:
        """DELETE /api/logs: how many rows were deleted."""
        return self._call(LogsClearedOut, "DELETE", "/api/logs")

    def list_users(self) -> list[UserOut]:
        """GET /api/users (admin)."""
        return self._list(UserOut, "GET", "/api/users")

    def create_user(self, username: str, password: str, role: str) -> UserOut:
        """POST /api/users (admin): the created user."""
        body = {"username": username, "password": password, "role": role}
        return self._call(UserOut, "POST", "/api/users", body)

    def delete_user(self, user_id: int) -> DeletedOut:
        """DELETE /api/users/<id> (admin)."""
        return self._call(DeletedOut, "DELETE", f"/api/users/{user_id}")

    def load_balancer(self) -> LoadBalancerOut:
        """GET /api/load-balancer: the algorithm, the ones to choose from and the picks per instance."""
        return self._call(LoadBalancerOut, "GET", "/api/load-balancer")

    def set_algorithm(self, algorithm: str) -> LoadBalancerOut:
        """PUT /api/load-balancer: the balancer state after the switch (an unknown name is a 400)."""
        return self._call(LoadBalancerOut, "PUT", "/api/load-balancer", {"algorithm": algorithm})

    def circuit_breakers(self) -> BreakersOut:
        """GET /api/circuit-breakers: counts by state and every breaker."""
        return self._call(BreakersOut, "GET", "/api/circuit-breakers")

    def update_breaker(self, service_name: str, body: Mapping[str, Any]) -> BreakerOut:
        """PUT /api/circuit-breakers/<name>: the breaker with its new thresholds."""
        return self._call(BreakerOut, "PUT", f"/api/circuit-breakers/{quote(service_name, safe='')}", body)

    def reset_breaker(self, service_name: str) -> BreakerOut:
        """POST /api/circuit-breakers/<name>/reset: the breaker, CLOSED."""
        return self._call(BreakerOut, "POST", f"/api/circuit-breakers/{quote(service_name, safe='')}/reset")

    def reset_all_breakers(self) -> MessageOut:
        """POST /api/circuit-breakers/reset-all."""
        return self._call(MessageOut, "POST", "/api/circuit-breakers/reset-all")

    def system_metrics(self) -> SystemMetricsOut:
        """GET /api/metrics: resilience, loadBalancer, circuitBreakers, scaling and the rest."""
        return self._call(SystemMetricsOut, "GET", "/api/metrics")

    def start_load_test(self, body: Mapping[str, Any]) -> LoadTestOut:
        """POST /api/load-test/start: the new run's status (202); 409 while one runs, 422 for bad input."""
        return self._call(LoadTestOut, "POST", "/api/load-test/start", body)

    def stop_load_test(self) -> LoadTestOut:
        """POST /api/load-test/stop: the run's final status; 409 when none runs."""
        return self._call(LoadTestOut, "POST", "/api/load-test/stop")

    def load_test_status(self) -> LoadTestOut:
        """GET /api/load-test/status: the running or latest run, live (status idle before any)."""
        return self._call(LoadTestOut, "GET", "/api/load-test/status")

    def health(self) -> HealthOut:
        """GET /api/health: engine, database, write path (writer.writeLatencyMs), simulations; also the 503's body."""
        return self._call(HealthOut, "GET", "/api/health", accept=(503,))

    def simulate_service_failure(self, body: Mapping[str, Any]) -> SimulationOut:
        """POST /api/simulate/service-failure: the simulation (201); 409 same kind on the service, or kill of an
        external service."""
        return self._call(SimulationOut, "POST", "/api/simulate/service-failure", body)

    def simulate_network_latency(self, body: Mapping[str, Any]) -> SimulationOut:
        """POST /api/simulate/network-latency: the simulation (201); 409 when one is active on the same target."""
        return self._call(SimulationOut, "POST", "/api/simulate/network-latency", body)

    def simulate_database_overload(self, body: Mapping[str, Any]) -> SimulationOut:
        """POST /api/simulate/database-overload: the simulation (201); 409 while one is active."""
        return self._call(SimulationOut, "POST", "/api/simulate/database-overload", body)

    def simulate_memory_leak(self, body: Mapping[str, Any]) -> SimulationOut:
        """POST /api/simulate/memory-leak: the simulation (201); 409 while one is active."""
        return self._call(SimulationOut, "POST", "/api/simulate/memory-leak", body)

    def stop_simulation(self, simulation_id: int) -> SimulationOut:
        """POST /api/simulations/<id>/stop: the ended simulation with its effect; 404 unknown, 409 not active."""
        return self._call(SimulationOut, "POST", f"/api/simulations/{int(simulation_id)}/stop")

    def stop_all_simulations(self) -> StopAllOut:
        """POST /api/simulate/stop-all: how many were stopped."""
        return self._call(StopAllOut, "POST", "/api/simulate/stop-all")

    def scaling(self) -> ScalingOut:
        """GET /api/scaling: instances, load (in flight) and scaling room per service."""
        return self._call(ScalingOut, "GET", "/api/scaling")

    def scale(self, service_id: int, direction: str) -> ScaleOut:
        """POST /api/services/<id>/scale-up or -down; 409 at a bound, for an external service or while another
        action on it runs; 503 when a new instance does not become healthy."""
        return self._call(ScaleOut, "POST", f"/api/services/{int(service_id)}/scale-{direction}")

    def set_autoscaler(self, service_id: int, body: Mapping[str, Any]) -> AutoscalerOut:
        """PUT /api/services/<id>/autoscaler: the settings now in force; 422 names a bad field."""
        return self._call(AutoscalerOut, "PUT", f"/api/services/{int(service_id)}/autoscaler", body)

    def recent_checks(self, service_id: int, limit: int = 50) -> list[CheckOut]:
        """GET /api/services/<id>/checks: the latest results, newest first (the engine's memory)."""
        return self._list(CheckOut, "GET", f"/api/services/{service_id}/checks?limit={limit}")

    def uptime(self, service_id: int, window: str = "24h") -> UptimeOut:
        """GET /api/services/<id>/uptime for a window (1h, 24h, 7d, 30d, 90d)."""
        return self._call(UptimeOut, "GET", f"/api/services/{service_id}/uptime?window={quote(window)}")

    def audit(self, query: Mapping[str, Any] | None = None) -> list[AuditEntryOut]:
        """GET /api/audit with an AuditQuery (actor, action, outcome, since, until, before, limit), newest first."""
        return self._list(AuditEntryOut, "GET", "/api/audit", query)

    def audit_csv(self, query: Mapping[str, Any] | None = None) -> str:
        """GET /api/audit as CSV, with the same filters."""
        return self.text("/api/audit", {**(query or {}), "format": "csv"})


def _failure(response: httpx.Response) -> ApiCallFailed:
    """An error answer as ApiCallFailed with the API's `error` and `details`."""
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
    return ApiCallFailed(response.status_code, error, details, _retry_after(response))


def _query(params: Mapping[str, Any] | None) -> dict[str, str] | None:
    """A query string's parameters as text: None left out, booleans as JSON writes them."""
    if not params:
        return None
    return {k: (("true" if v else "false") if isinstance(v, bool) else str(v)) for k, v in params.items()
            if v is not None}


@functools.cache
def _list_of(model: type[BaseModel]) -> TypeAdapter[list[Any]]:
    """A validator of a list of `model` (built once per model)."""
    return TypeAdapter(list[model])  # type: ignore[valid-type]


def _mismatch(exc: ValidationError, status: int, call: str) -> ApiCallFailed:
    """An answer outside the contract, as an ApiCallFailed naming its first problem."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "the answer"
    return ApiCallFailed(status, f"the answer to {call} does not match the contract ({where}: {first['msg']})")


def _retry_after(response: httpx.Response) -> int | None:
    """Whole seconds from a Retry-After header given in seconds; None if absent or a date."""
    raw = response.headers.get("Retry-After", "").strip()
    return int(raw) if raw.isdigit() else None
