"""The calls the pages make to the engine's REST API, with the logged-in session's token; each returns its
contract model (see ui.client), so pages read typed attributes; validation lives in the API."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import streamlit as st

from contract.alerting import AlertOut, AlertRuleOut, SilenceOut
from contract.audit import AuditEntryOut
from contract.chaos import SimulationOut, StopAllOut
from contract.history import CheckOut
from contract.incidents import IncidentDetailOut, IncidentOut, IncidentStatsOut
from contract.loadtest import LoadTestOut
from contract.notifications import ChannelOut, DeliveryOut
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
from contract.roles import CLIENT_ADDRESS_HEADER, DASHBOARD_SECRET_HEADER, DASHBOARD_SECRET_VAR
from contract.scaling import AutoscalerOut, ScaleOut, ScalingOut
from contract.traffic import BreakerOut, BreakersOut, LoadBalancerOut
from ui import session
from ui.client import TIMEOUT_S, ApiCallFailed, ApiClient, plain

__all__ = [
    "DEFAULT_API_URL", "SCALE_TIMEOUT_S", "TEST_SEND_TIMEOUT_S", "TIMEOUT_S", "ApiCallFailed", "ApiClient",
    "acknowledge_incident", "alert_channels", "alert_rules", "alerts", "api_url", "audit", "audit_csv",
    "browser_headers", "change_password",
    "circuit_breakers", "clear_logs",
    "create_alert_channel", "create_alert_rule", "create_service", "create_silence", "create_user", "default_client",
    "delete_alert_channel", "delete_alert_rule", "delete_service", "delete_user", "deliveries", "expire_silence",
    "health", "incident", "incident_stats", "incidents", "list_users", "load_balancer", "load_test_status", "login",
    "logout", "plain", "recent_checks", "reset_all_breakers", "reset_breaker", "scale_down", "scale_up", "scaling",
    "set_algorithm", "set_autoscaler", "silences", "simulate_database_overload", "simulate_memory_leak",
    "simulate_network_latency", "simulate_service_failure", "start_load_test", "stop_all_simulations",
    "stop_load_test", "stop_simulation", "system_metrics", "test_alert_channel", "update_alert_channel",
    "update_alert_rule", "update_breaker", "update_service"
]

DEFAULT_API_URL = "http://127.0.0.1:5000"
# a scale-up waits for the new instance to be healthy (SCALE_READY_TIMEOUT_S, 15 s by default) and a scale-down
# for in-flight requests to finish (SCALE_DRAIN_TIMEOUT_S, 10 s) and the process to stop (5 s grace)
SCALE_TIMEOUT_S = 40.0
# a test notification is sent while the call waits: an SMTP server or a webhook may take their own timeouts
TEST_SEND_TIMEOUT_S = 30.0


def api_url() -> str:
    """Where the API is: env API_URL, else the engine's default address."""
    return os.environ.get("API_URL") or DEFAULT_API_URL


def browser_headers(address: str | None) -> dict[str, str]:
    """The browser's address for the API to count (failed logins, rate limits) instead of this dashboard's, proven
    by the secret the engine gave the dashboard it started; nothing without either (a dashboard started by hand, a
    browser on this host)."""
    secret = os.environ.get(DASHBOARD_SECRET_VAR)
    if not secret or not address:
        return {}
    return {CLIENT_ADDRESS_HEADER: address, DASHBOARD_SECRET_HEADER: secret}


def default_client(token: str | None = None, timeout: float = TIMEOUT_S) -> ApiClient:
    """A client for the API at api_url(), sending `token`, else the logged-in session's token, and the browser's
    address."""
    return ApiClient(api_url(), token=token if token is not None else session.token(), timeout=timeout,
                     headers=browser_headers(st.context.ip_address))


def login(username: str, password: str) -> TokenOut:
    """Exchange credentials for a token (no token sent)."""
    return ApiClient(api_url(), headers=browser_headers(st.context.ip_address)).login(username, password)


def logout() -> MessageOut:
    """End every token of the logged-in user."""
    return default_client().logout()


def change_password(current: str, new: str) -> TokenOut:
    """A new password for the logged-in user: a fresh token; the user's other sessions end."""
    return default_client().change_password(current, new)


def create_service(body: Mapping[str, Any]) -> ServiceOut:
    """Register a service through the API."""
    return default_client().create_service(body)


def update_service(service_id: int, body: Mapping[str, Any]) -> ServiceOut:
    """Change a service through the API."""
    return default_client().update_service(service_id, body)


def delete_service(service_id: int) -> DeletedOut:
    """Deregister a service through the API."""
    return default_client().delete_service(service_id)


def clear_logs() -> LogsClearedOut:
    """Delete every log row through the API."""
    return default_client().clear_logs()


def list_users() -> list[UserOut]:
    """Every user (admin)."""
    return default_client().list_users()


def create_user(username: str, password: str, role: str) -> UserOut:
    """Add a user (admin)."""
    return default_client().create_user(username, password, role)


def delete_user(user_id: int) -> DeletedOut:
    """Remove a user (admin)."""
    return default_client().delete_user(user_id)


def load_balancer() -> LoadBalancerOut:
    """The live balancer state."""
    return default_client().load_balancer()


def set_algorithm(algorithm: str) -> LoadBalancerOut:
    """Switch the balancer algorithm (operator)."""
    return default_client().set_algorithm(algorithm)


def circuit_breakers() -> BreakersOut:
    """Every registered service's breaker, with counts by state."""
    return default_client().circuit_breakers()


def update_breaker(service_name: str, body: Mapping[str, Any]) -> BreakerOut:
    """Change a breaker's thresholds (operator)."""
    return default_client().update_breaker(service_name, body)


def reset_breaker(service_name: str) -> BreakerOut:
    """Close one breaker (operator)."""
    return default_client().reset_breaker(service_name)


def reset_all_breakers() -> MessageOut:
    """Close every breaker (operator)."""
    return default_client().reset_all_breakers()


def system_metrics() -> SystemMetricsOut:
    """The system metrics: overview, balancer, breakers, scaling, shards, resilience, load test, recent logs."""
    return default_client().system_metrics()


def start_load_test(body: Mapping[str, Any]) -> LoadTestOut:
    """Start a load test (operator)."""
    return default_client().start_load_test(body)


def stop_load_test() -> LoadTestOut:
    """Stop the running load test (operator)."""
    return default_client().stop_load_test()


def load_test_status() -> LoadTestOut:
    """The running or latest load test, live from the engine."""
    return default_client().load_test_status()


def health() -> HealthOut:
    """The engine's health, write latency and active simulation count (no token needed)."""
    return default_client().health()


def simulate_service_failure(body: Mapping[str, Any]) -> SimulationOut:
    """Fail a service's requests, or kill one of its instances (operator)."""
    return default_client().simulate_service_failure(body)


def simulate_network_latency(body: Mapping[str, Any]) -> SimulationOut:
    """Delay requests to a service, or to every service (operator)."""
    return default_client().simulate_network_latency(body)


def simulate_database_overload(body: Mapping[str, Any]) -> SimulationOut:
    """Busy the engine's database (operator)."""
    return default_client().simulate_database_overload(body)


def simulate_memory_leak(body: Mapping[str, Any]) -> SimulationOut:
    """Allocate memory in the engine at a rate (operator)."""
    return default_client().simulate_memory_leak(body)


def stop_simulation(simulation_id: int) -> SimulationOut:
    """End one active simulation now (operator)."""
    return default_client().stop_simulation(simulation_id)


def stop_all_simulations() -> StopAllOut:
    """End every active simulation now (operator)."""
    return default_client().stop_all_simulations()


def scaling() -> ScalingOut:
    """Instances, load (in flight) and scaling room per service, live from the engine."""
    return default_client().scaling()


def scale_up(service_id: int) -> ScaleOut:
    """Start one more instance of a managed service and wait until it is healthy (operator)."""
    return default_client(timeout=SCALE_TIMEOUT_S).scale(service_id, "up")


def scale_down(service_id: int) -> ScaleOut:
    """Drain and stop one instance of a managed service (operator)."""
    return default_client(timeout=SCALE_TIMEOUT_S).scale(service_id, "down")


def set_autoscaler(service_id: int, body: Mapping[str, Any]) -> AutoscalerOut:
    """Turn a managed service's autoscaler on or off, with its settings and instance bounds (operator)."""
    return default_client().set_autoscaler(service_id, body)


def recent_checks(service_ids: list[int], limit: int = 50) -> dict[int, list[CheckOut]]:
    """Each service's latest check results, newest first; the first failure raises (the API is away)."""
    client = default_client()
    return {sid: client.recent_checks(sid, limit) for sid in service_ids}


def alert_rules() -> list[AlertRuleOut]:
    """Every alert rule."""
    return default_client().alert_rules()


def create_alert_rule(body: Mapping[str, Any]) -> AlertRuleOut:
    """Add an alert rule (operator)."""
    return default_client().create_alert_rule(body)


def update_alert_rule(rule_id: int, body: Mapping[str, Any]) -> AlertRuleOut:
    """Replace an alert rule's settings (operator)."""
    return default_client().update_alert_rule(rule_id, body)


def delete_alert_rule(rule_id: int) -> DeletedOut:
    """Remove an alert rule (operator)."""
    return default_client().delete_alert_rule(rule_id)


def alerts(query: Mapping[str, Any] | None = None) -> list[AlertOut]:
    """Alerts now, filtered by an AlertQuery."""
    return default_client().alerts(query)


def silences() -> list[SilenceOut]:
    """Every silence with its state."""
    return default_client().silences()


def create_silence(body: Mapping[str, Any]) -> SilenceOut:
    """Silence a service, a rule or both for a while (operator)."""
    return default_client().create_silence(body)


def expire_silence(silence_id: int) -> SilenceOut:
    """End a silence now (operator)."""
    return default_client().expire_silence(silence_id)


def alert_channels() -> list[ChannelOut]:
    """Every notification channel, secrets masked."""
    return default_client().alert_channels()


def create_alert_channel(body: Mapping[str, Any]) -> ChannelOut:
    """Add a notification channel."""
    return default_client().create_alert_channel(body)


def update_alert_channel(channel_id: int, body: Mapping[str, Any]) -> ChannelOut:
    """Change a notification channel; secrets left out are kept."""
    return default_client().update_alert_channel(channel_id, body)


def delete_alert_channel(channel_id: int) -> DeletedOut:
    """Remove a notification channel."""
    return default_client().delete_alert_channel(channel_id)


def test_alert_channel(channel_id: int) -> DeliveryOut:
    """Send a test notification over a channel and wait for its outcome."""
    return default_client(timeout=TEST_SEND_TIMEOUT_S).test_alert_channel(channel_id)


def deliveries(query: Mapping[str, Any] | None = None) -> list[DeliveryOut]:
    """Notifications and their outcomes, filtered by a DeliveryQuery."""
    return default_client().deliveries(query)


def incidents(query: Mapping[str, Any] | None = None) -> list[IncidentOut]:
    """Incidents, newest first, filtered by an IncidentQuery."""
    return default_client().incidents(query)


def incident(incident_id: str) -> IncidentDetailOut:
    """One incident with its timeline."""
    return default_client().incident(incident_id)


def acknowledge_incident(incident_id: str, note: str) -> IncidentOut:
    """Acknowledge an incident with a note (operator)."""
    return default_client().acknowledge_incident(incident_id, note)


def incident_stats(query: Mapping[str, Any] | None = None) -> IncidentStatsOut:
    """Incidents, MTTA and MTTR of one service (or all) over a window of days."""
    return default_client().incident_stats(query)


def audit(query: Mapping[str, Any] | None = None) -> list[AuditEntryOut]:
    """The audit trail (admin), newest first, filtered by an AuditQuery."""
    return default_client().audit(query)


def audit_csv(query: Mapping[str, Any] | None = None) -> str:
    """The same rows as the API's CSV (admin)."""
    return default_client().audit_csv(query)
