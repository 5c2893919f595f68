"""The alerting part of the engine's API client: rules, alerts and silences, notification channels and their
deliveries, incidents and SLOs. ui.client.ApiClient inherits these calls and supplies the transport."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from pydantic import BaseModel

from contract.alerting import AlertOut, AlertRuleOut, SilenceOut
from contract.incidents import IncidentDetailOut, IncidentOut, IncidentStatsOut, SloOut
from contract.notifications import ChannelOut, DeliveryOut
from contract.responses import DeletedOut

__all__ = ["AlertingCalls"]

M = TypeVar("M", bound=BaseModel)


class AlertingCalls:
    """The alerting, notification, incident and SLO calls of ui.client.ApiClient (which defines _call and _list)."""

    if TYPE_CHECKING:
        def _call(self, model: type[M], method: str, path: str, body: Mapping[str, Any] | None = None,
                  accept: tuple[int, ...] = (), params: Mapping[str, Any] | None = None) -> M: ...

        def _list(self, model: type[M], method: str, path: str,
                  params: Mapping[str, Any] | None = None) -> list[M]: ...

    # -- alerting: rules, alerts, silences (engine/api/alerts.py) ------------------------------------------------

    def alert_rules(self) -> list[AlertRuleOut]:
        """GET /api/alert-rules: every rule."""
        return self._list(AlertRuleOut, "GET", "/api/alert-rules")

    def alert_rule(self, rule_id: int) -> AlertRuleOut:
        """GET /api/alert-rules/<id>; 404 unknown."""
        return self._call(AlertRuleOut, "GET", f"/api/alert-rules/{int(rule_id)}")

    def create_alert_rule(self, body: Mapping[str, Any]) -> AlertRuleOut:
        """POST /api/alert-rules (an AlertRuleIn): the stored rule; 422 names a bad field, 409 a taken name."""
        return self._call(AlertRuleOut, "POST", "/api/alert-rules", body)

    def update_alert_rule(self, rule_id: int, body: Mapping[str, Any]) -> AlertRuleOut:
        """PUT /api/alert-rules/<id> (a whole AlertRuleIn): the rule as stored now."""
        return self._call(AlertRuleOut, "PUT", f"/api/alert-rules/{int(rule_id)}", body)

    def delete_alert_rule(self, rule_id: int) -> DeletedOut:
        """DELETE /api/alert-rules/<id>: the rule and its alerts are gone."""
        return self._call(DeletedOut, "DELETE", f"/api/alert-rules/{int(rule_id)}")

    def alerts(self, query: Mapping[str, Any] | None = None) -> list[AlertOut]:
        """GET /api/alerts with an AlertQuery (state, silenced, service, limit)."""
        return self._list(AlertOut, "GET", "/api/alerts", query)

    def silences(self) -> list[SilenceOut]:
        """GET /api/silences: every silence, with its state now."""
        return self._list(SilenceOut, "GET", "/api/silences")

    def create_silence(self, body: Mapping[str, Any]) -> SilenceOut:
        """POST /api/silences (a SilenceIn): the stored silence."""
        return self._call(SilenceOut, "POST", "/api/silences", body)

    def expire_silence(self, silence_id: int) -> SilenceOut:
        """DELETE /api/silences/<id>: the silence, expired now (it stays listed)."""
        return self._call(SilenceOut, "DELETE", f"/api/silences/{int(silence_id)}")

    # -- notification channels and deliveries (engine/api/channels.py) ------------------------------------------

    def alert_channels(self) -> list[ChannelOut]:
        """GET /api/alert-channels: every channel, its secrets masked."""
        return self._list(ChannelOut, "GET", "/api/alert-channels")

    def create_alert_channel(self, body: Mapping[str, Any]) -> ChannelOut:
        """POST /api/alert-channels (a ChannelIn): the stored channel, masked."""
        return self._call(ChannelOut, "POST", "/api/alert-channels", body)

    def update_alert_channel(self, channel_id: int, body: Mapping[str, Any]) -> ChannelOut:
        """PUT /api/alert-channels/<id>; a secret field left out keeps the stored one."""
        return self._call(ChannelOut, "PUT", f"/api/alert-channels/{int(channel_id)}", body)

    def delete_alert_channel(self, channel_id: int) -> DeletedOut:
        """DELETE /api/alert-channels/<id>."""
        return self._call(DeletedOut, "DELETE", f"/api/alert-channels/{int(channel_id)}")

    def test_alert_channel(self, channel_id: int) -> DeliveryOut:
        """POST /api/alert-channels/<id>/test: the test notification's delivery, with its outcome."""
        return self._call(DeliveryOut, "POST", f"/api/alert-channels/{int(channel_id)}/test")

    def deliveries(self, query: Mapping[str, Any] | None = None) -> list[DeliveryOut]:
        """GET /api/deliveries with a DeliveryQuery (channel, status, limit), newest first."""
        return self._list(DeliveryOut, "GET", "/api/deliveries", query)

    # -- incidents and SLOs (engine/api/incidents.py) ------------------------------------------------------------

    def incidents(self, query: Mapping[str, Any] | None = None) -> list[IncidentOut]:
        """GET /api/incidents with an IncidentQuery (status, service, limit), newest first."""
        return self._list(IncidentOut, "GET", "/api/incidents", query)

    def incident(self, incident_id: str) -> IncidentDetailOut:
        """GET /api/incidents/<id>: the incident with its timeline, oldest event first."""
        return self._call(IncidentDetailOut, "GET", f"/api/incidents/{quote(incident_id, safe='')}")

    def acknowledge_incident(self, incident_id: str, note: str = "") -> IncidentOut:
        """POST /api/incidents/<id>/acknowledge with a note: the incident, acknowledged."""
        return self._call(IncidentOut, "POST", f"/api/incidents/{quote(incident_id, safe='')}/acknowledge",
                          {"note": note})

    def incident_stats(self, query: Mapping[str, Any] | None = None) -> IncidentStatsOut:
        """GET /api/incidents/stats with an IncidentStatsQuery (service, windowDays): incidents, MTTA and MTTR."""
        return self._call(IncidentStatsOut, "GET", "/api/incidents/stats", params=query)

    def slo(self, service_id: int) -> SloOut:
        """GET /api/services/<id>/slo: the SLO with its SLIs, budget and burn rates; 404 without one."""
        return self._call(SloOut, "GET", f"/api/services/{int(service_id)}/slo")

    def set_slo(self, service_id: int, body: Mapping[str, Any]) -> SloOut:
        """PUT /api/services/<id>/slo (an SloIn): the SLO now in force."""
        return self._call(SloOut, "PUT", f"/api/services/{int(service_id)}/slo", body)

    def delete_slo(self, service_id: int) -> DeletedOut:
        """DELETE /api/services/<id>/slo; 404 without one."""
        return self._call(DeletedOut, "DELETE", f"/api/services/{int(service_id)}/slo")
