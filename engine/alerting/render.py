"""What a notification says, once per notice, and the payload each channel type sends (never a secret in one)."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from contract.alerting import AlertState
from contract.notifications import DeliveryEvent
from engine.alerting.model import Notice

__all__ = [
    "NOT_ENDED",
    "Links",
    "Message",
    "apprise_payload",
    "email_payload",
    "rfc3339",
    "slack_payload",
    "webhook_payload",
]

NOT_ENDED = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt of an alert that has not ended (Go's zero time)
MONITOR = "monitor"  # what a subject names when the alert watches the monitor itself, not a service


def rfc3339(at: datetime) -> str:
    """UTC, with a Z, as Alertmanager writes times."""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def shown(value: float | None) -> str:
    """A figure as an annotation shows it; unknown is n/a."""
    if value is None:
        return "n/a"
    return str(int(value)) if float(value).is_integer() else str(round(value, 3))


@dataclass(frozen=True)
class Links:
    """The engine's public address and the links a notification carries."""

    base: str  # no trailing slash

    def rule(self, rule_id: int) -> str:
        """The alert rule that raised an alert."""
        return f"{self.base}/api/alert-rules/{rule_id}"

    def incident(self, incident_id: object) -> str:
        """An incident and its timeline."""
        return f"{self.base}/api/incidents/{incident_id}"

    def channel(self, channel_id: int) -> str:
        """A channel (the source of a test notification)."""
        return f"{self.base}/api/alert-channels/{channel_id}"


@dataclass(frozen=True)
class Message:
    """One notice as every channel type tells it."""

    status: str  # firing | resolved, as Alertmanager says
    event: DeliveryEvent
    alertname: str
    service: str | None
    severity: str
    kind: str
    fingerprint: str
    summary: str
    value: float | None
    threshold: float | None
    starts_at: datetime
    ends_at: datetime | None
    generator_url: str
    external_url: str
    incident_url: str | None

    @classmethod
    def of(cls, notice: Notice, links: Links) -> Message:
        """What the notice says."""
        a = notice.alert
        resolved = notice.event is DeliveryEvent.RESOLVED or a.state is AlertState.RESOLVED
        return cls(
            status="resolved" if resolved else "firing", event=notice.event, alertname=a.rule_name,
            service=a.service, severity=a.severity.value, kind=a.kind.value, fingerprint=a.fingerprint,
            summary=a.summary, value=a.value, threshold=a.threshold, starts_at=a.fired_at or a.active_at,
            ends_at=(a.resolved_at or a.at) if resolved else None, generator_url=links.rule(a.rule_id),
            external_url=links.base,
            incident_url=links.incident(a.incident_id) if a.incident_id is not None else None,
        )

    @classmethod
    def test(cls, channel_id: int, channel_name: str, at: datetime, links: Links) -> Message:
        """A test notification to one channel."""
        return cls(
            status="firing", event=DeliveryEvent.TEST, alertname="test-notification", service=None,
            severity="info", kind="test", fingerprint="test",
            summary=f"A test notification to the channel {channel_name}: if you read this, the channel works.",
            value=None, threshold=None, starts_at=at, ends_at=None, generator_url=links.channel(channel_id),
            external_url=links.base, incident_url=None,
        )

    @property
    def subject(self) -> str:
        """e.g. `[FIRING] orders: orders-down (critical)`."""
        return f"[{self.status.upper()}] {self.service or MONITOR}: {self.alertname} ({self.severity})"

    def lines(self) -> list[str]:
        """The body as plain lines: summary, figures, times, links."""
        out = [self.summary, "", f"value: {shown(self.value)}    threshold: {shown(self.threshold)}",
               f"started: {rfc3339(self.starts_at)}"]
        if self.ends_at is not None:
            out.append(f"resolved: {rfc3339(self.ends_at)}")
        if self.incident_url is not None:
            out.append(f"incident: {self.incident_url}")
        out.append(f"rule: {self.generator_url}")
        return out


def webhook_payload(m: Message, receiver: str) -> dict[str, Any]:
    """Alertmanager's webhook body (version 4) with one alert, plus incidentURL when the alert has an incident."""
    labels = {"alertname": m.alertname, "service": m.service or "", "severity": m.severity, "kind": m.kind,
              "fingerprint": m.fingerprint}
    annotations = {"summary": m.summary, "value": shown(m.value), "threshold": shown(m.threshold)}
    if m.incident_url is not None:
        annotations["incident"] = m.incident_url
    group = {"alertname": m.alertname, "service": m.service or ""}
    body: dict[str, Any] = {
        "version": "4",
        "groupKey": "{}:{" + ", ".join(f'{k}="{v}"' for k, v in group.items()) + "}",
        "truncatedAlerts": 0,
        "status": m.status,
        "receiver": receiver,
        "groupLabels": group,
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": m.external_url,
        "alerts": [{
            "status": m.status,
            "labels": labels,
            "annotations": annotations,
            "startsAt": rfc3339(m.starts_at),
            "endsAt": rfc3339(m.ends_at) if m.ends_at is not None else NOT_ENDED,
            "generatorURL": m.generator_url,
            "fingerprint": m.fingerprint,
        }],
    }
    if m.incident_url is not None:
        body["incidentURL"] = m.incident_url
    return body


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(m: Message) -> dict[str, Any]:
    """A Slack incoming-webhook message: `text` (the notification's one line, for clients without blocks) and
    blocks with the summary, figures and links."""
    links = [f"<{m.generator_url}|rule>"]
    if m.incident_url is not None:
        links.insert(0, f"<{m.incident_url}|incident>")
    detail = (f"*value* {_slack_escape(shown(m.value))}    *threshold* {_slack_escape(shown(m.threshold))}    "
              f"*started* {rfc3339(m.starts_at)}")
    if m.ends_at is not None:
        detail += f"    *resolved* {rfc3339(m.ends_at)}"
    return {
        "text": f"{m.subject}: {m.summary}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{_slack_escape(m.subject)}*\n"
                                                                   f"{_slack_escape(m.summary)}"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": detail},
                                             {"type": "mrkdwn", "text": " · ".join(links)}]},
        ],
    }


def email_payload(m: Message, sender: str, recipients: list[str]) -> dict[str, Any]:
    """An email's headers and its text and HTML bodies."""
    rows = "".join(
        f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
        for k, v in (("service", m.service or MONITOR), ("state", m.status), ("severity", m.severity),
                     ("value", shown(m.value)), ("threshold", shown(m.threshold)),
                     ("started", rfc3339(m.starts_at)),
                     *((("resolved", rfc3339(m.ends_at)),) if m.ends_at is not None else ()))
    )
    links = [(m.incident_url, "incident")] if m.incident_url is not None else []
    links.append((m.generator_url, "rule"))
    anchors = " · ".join(f"<a href='{html.escape(u, quote=True)}'>{t}</a>" for u, t in links)
    body_html = (f"<html><body><h2>{html.escape(m.subject)}</h2><p>{html.escape(m.summary)}</p>"
                 f"<table>{rows}</table><p>{anchors}</p></body></html>")
    return {"subject": m.subject, "from": sender, "to": recipients, "text": "\n".join(m.lines()) + "\n",
            "html": body_html}


def apprise_payload(m: Message) -> dict[str, Any]:
    """Apprise's title, body and notification type (failure, warning, info, success)."""
    if m.status == "resolved":
        kind = "success"
    else:
        kind = {"critical": "failure", "warning": "warning"}.get(m.severity, "info")
    return {"title": m.subject, "body": "\n".join(m.lines()), "type": kind}
