"""Channel types: how each renders a notification, sends it, masks its secrets and names the hosts it reaches.

    CHANNELS[ChannelType] -> Channel
        webhook   Alertmanager's JSON over POST, `X-Signature: sha256=<HMAC-SHA256(secret, body)>` with a secret
        slack     a Slack incoming webhook: {"text", "blocks"}
        email     SMTP (aiosmtplib): STARTTLS when asked (implicit TLS on 465), login when a username is set
        apprise   any Apprise URL, on a thread of the channel's own (Apprise blocks), bounded by the timeout

Every connection goes to an address checked at that moment under the channels' policy (engine.security.ssrf): the
HTTP session's connector refuses link-local and metadata addresses (names and IP literals), SMTP dials a checked
address itself, and Apprise's host (where its URL names one) is checked before Apprise runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
from concurrent.futures import Executor
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import aiosmtplib

from contract.errors import DeliveryFailed
from contract.notifications import SECRET_MASK, AppriseConfig, ChannelType, EmailConfig, SlackConfig, WebhookConfig
from engine import VERSION
from engine.alerting.render import Message, apprise_payload, email_payload, slack_payload, webhook_payload
from engine.security.ssrf import Policy, checked_addresses

__all__ = ["APPRISE_HOSTED", "CHANNELS", "Channel", "Outbound", "channel_of", "sign"]

USER_AGENT = f"microservice-monitor/{VERSION}"
# Apprise schemes whose URL host is the server notified (elsewhere the host part is an id or a token)
APPRISE_HOSTED = frozenset({
    "json", "jsons", "xml", "xmls", "form", "forms", "apprise", "apprises", "gotify", "gotifys", "mmost", "mmosts",
    "ntfy", "ntfys", "rocket", "rockets", "matrix", "matrixs", "nctalk", "nctalks", "ncloud", "nclouds", "mailto",
    "mailtos", "kodi", "kodis", "xbmc", "xbmcs", "hassio", "hassios", "mqtt", "mqtts", "emby", "embys", "signal",
    "signals", "misskey", "misskeys",
})


@dataclass(frozen=True)
class Outbound:
    """What a send may use: an HTTP session that dials only checked addresses, the attempt's timeout in seconds,
    the channel's own thread for a blocking client, and the policy a connection made by hand is checked against."""

    http: aiohttp.ClientSession
    timeout: float
    thread: Executor
    guard: Policy


class Channel(Protocol):
    """One type of channel."""

    config_model: type[Any]

    def render(self, message: Message, receiver: str, config: Any) -> dict[str, Any]:
        """The payload to send (and record): JSON values, no secret."""

    async def send(self, config: Any, payload: dict[str, Any], out: Outbound) -> None:
        """Send the payload once; DeliveryFailed (or OSError, TimeoutError, aiohttp.ClientError) when it fails."""

    def masked(self, config: dict[str, Any]) -> dict[str, Any]:
        """The stored config as the API shows it: secrets replaced by SECRET_MASK."""

    def hosts(self, config: Any) -> list[tuple[str, str]]:
        """(field, host) of every host the channel connects to, where the config names one."""

    def secrets(self, config: Any) -> list[str]:
        """Values an error message must never repeat."""

    def problems(self, config: Any) -> list[tuple[str, str]]:
        """(field, message) of what the type's model cannot tell is wrong; checked when a channel is saved."""


class _NoProblems:
    """A channel type whose model says all there is to check."""

    def problems(self, config: Any) -> list[tuple[str, str]]:
        """Nothing more to check."""
        return []


def sign(secret: str, body: bytes) -> str:
    """The X-Signature header value of body: `sha256=` and the hex HMAC-SHA256 under secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def _post(out: Outbound, url: str, body: bytes, headers: dict[str, str]) -> None:
    # redirects are not followed: a 3xx could point anywhere, the guard checked this URL's host only
    async with out.http.post(url, data=body, headers={"User-Agent": USER_AGENT, **headers}, allow_redirects=False,
                             timeout=aiohttp.ClientTimeout(total=out.timeout)) as response:
        if not 200 <= response.status < 300:
            # the first 200 bytes say enough, and an endless answer costs nothing more
            text = (await response.content.read(200)).decode(errors="replace").strip()
            raise DeliveryFailed(f"HTTP {response.status}" + (f": {text}" if text else ""))


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:{SECRET_MASK}@{parts.netloc.rsplit('@', 1)[1]}"
    return urlunsplit(parts._replace(netloc=netloc))


def _host_only(url: str) -> str:
    """scheme://host[:port]/SECRET_MASK: where it goes, without the path, credentials or query that authorize it."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{host}/{SECRET_MASK}"


class WebhookChannel(_NoProblems):
    """Alertmanager's webhook JSON, signed when the channel has a secret."""

    config_model = WebhookConfig

    def render(self, message: Message, receiver: str, config: WebhookConfig) -> dict[str, Any]:
        """Alertmanager's body, version 4."""
        return webhook_payload(message, receiver)

    async def send(self, config: WebhookConfig, payload: dict[str, Any], out: Outbound) -> None:
        """POST the JSON; with a secret, X-Signature is the HMAC of exactly the bytes sent."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"}
        if config.secret:
            headers["X-Signature"] = sign(config.secret, body)
        await _post(out, config.url, body, headers)

    def masked(self, config: dict[str, Any]) -> dict[str, Any]:
        """The secret and any password in the URL masked."""
        shown = dict(config)
        if shown.get("secret"):
            shown["secret"] = SECRET_MASK
        if isinstance(shown.get("url"), str):
            shown["url"] = _without_password(shown["url"])
        return shown

    def hosts(self, config: WebhookConfig) -> list[tuple[str, str]]:
        """The URL's host."""
        return [("config.url", urlsplit(config.url).hostname or "")]

    def secrets(self, config: WebhookConfig) -> list[str]:
        """The secret and the URL's password."""
        return [s for s in (config.secret, urlsplit(config.url).password) if s]


class SlackChannel(_NoProblems):
    """A Slack incoming webhook; its URL is the secret."""

    config_model = SlackConfig

    def render(self, message: Message, receiver: str, config: SlackConfig) -> dict[str, Any]:
        """{"text", "blocks"}."""
        return slack_payload(message)

    async def send(self, config: SlackConfig, payload: dict[str, Any], out: Outbound) -> None:
        """POST the message."""
        await _post(out, config.url, json.dumps(payload).encode(), {"Content-Type": "application/json"})

    def masked(self, config: dict[str, Any]) -> dict[str, Any]:
        """The URL's path (its token) masked."""
        return {**config, "url": _host_only(config["url"])} if isinstance(config.get("url"), str) else dict(config)

    def hosts(self, config: SlackConfig) -> list[tuple[str, str]]:
        """The URL's host."""
        return [("config.url", urlsplit(config.url).hostname or "")]

    def secrets(self, config: SlackConfig) -> list[str]:
        """The URL and its path."""
        path = urlsplit(config.url).path
        return [config.url, *([path] if len(path) > 1 else [])]


async def _dial(host: str, port: int, guard: Policy) -> socket.socket:
    """A socket connected to a checked address of host (the first that answers)."""
    loop = asyncio.get_running_loop()
    error: OSError = OSError(f"host {host!r} does not resolve")
    for ip in await checked_addresses(host, port, guard):
        sock = socket.socket(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, (str(ip), port))
            return sock
        except OSError as exc:
            sock.close()
            error = exc
        except BaseException:
            sock.close()
            raise
    raise error


class EmailChannel(_NoProblems):
    """SMTP with aiosmtplib over a socket the guard dialled."""

    config_model = EmailConfig

    def render(self, message: Message, receiver: str, config: EmailConfig) -> dict[str, Any]:
        """Subject, from, to, text and HTML."""
        return email_payload(message, config.from_, list(config.to))

    async def send(self, config: EmailConfig, payload: dict[str, Any], out: Outbound) -> None:
        """Connect to a checked address, STARTTLS when asked (implicit TLS on port 465), log in when a username is
        set, send one multipart/alternative message to every recipient."""
        email = EmailMessage()
        email["Subject"] = payload["subject"]
        email["From"] = payload["from"]
        email["To"] = ", ".join(payload["to"])
        email["Date"] = formatdate(localtime=False)
        email["Message-ID"] = make_msgid(domain=payload["from"].rsplit("@", 1)[-1])
        email.set_content(payload["text"])
        email.add_alternative(payload["html"], subtype="html")
        implicit_tls = config.port == 465
        sock = await _dial(config.host, config.port, out.guard)
        smtp = aiosmtplib.SMTP(hostname=config.host, sock=sock, timeout=out.timeout, use_tls=implicit_tls,
                               start_tls=False)
        try:
            await smtp.connect()
            if config.starttls and not implicit_tls:
                await smtp.starttls()
            if config.username:
                await smtp.login(config.username, config.password or "")
            await smtp.send_message(email, sender=payload["from"], recipients=payload["to"])
            await smtp.quit()
        except aiosmtplib.SMTPException as exc:
            raise DeliveryFailed(f"SMTP: {exc}") from exc
        finally:
            smtp.close()
            sock.close()

    def masked(self, config: dict[str, Any]) -> dict[str, Any]:
        """The password masked."""
        return {**config, "password": SECRET_MASK} if config.get("password") else dict(config)

    def hosts(self, config: EmailConfig) -> list[tuple[str, str]]:
        """The SMTP server."""
        return [("config.host", config.host)]

    def secrets(self, config: EmailConfig) -> list[str]:
        """The password."""
        return [config.password] if config.password else []


def apprise_host(url: str) -> str | None:
    """The host an Apprise URL sends to, where it names one: an IP literal, or the host of a scheme that names its
    server (json://, ntfy://, gotify://, …); None when the host part is an id or token (discord://, tgram://)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    return host if parts.scheme.lower() in APPRISE_HOSTED and host else None


def _bounded(url: str, timeout: float) -> str:
    """url with Apprise's connect and read timeouts (cto, rto) set to the attempt's, unless it sets them."""
    parts = urlsplit(url)
    query = parts.query
    for key in ("cto", "rto"):
        if f"{key}=" not in query:
            query = f"{query}&{key}={timeout:g}" if query else f"{key}={timeout:g}"
    return urlunsplit(parts._replace(query=query))


def _apprise() -> Any:
    """The apprise package, its own log kept off the console (its lines quote whole URLs, tokens included)."""
    import apprise  # imported here: the package takes most of a second to load and only this channel needs it

    quiet = logging.getLogger("apprise")
    if quiet.propagate:
        quiet.propagate = False
        quiet.addHandler(logging.NullHandler())
    return apprise


def _apprise_notify(url: str, payload: dict[str, Any], timeout: float) -> str | None:
    """Send with Apprise (blocking); None when it succeeded, else the last thing Apprise logged."""
    apprise = _apprise()
    sender = apprise.Apprise()
    if not sender.add(url):
        return "Apprise does not accept this URL"
    result = sender.notify(body=payload["body"], title=payload["title"], notify_type=apprise.NotifyType(
        payload["type"]), timeout=timeout)
    if result:
        return None
    lines = [entry.message for entry in result.logs()]
    return f"Apprise: {lines[-1]}" if lines else f"Apprise: {result.status.name.lower()}"


class AppriseChannel:
    """Any Apprise URL."""

    config_model = AppriseConfig

    def render(self, message: Message, receiver: str, config: AppriseConfig) -> dict[str, Any]:
        """Title, body and notification type."""
        return apprise_payload(message)

    async def send(self, config: AppriseConfig, payload: dict[str, Any], out: Outbound) -> None:
        """Check the URL's host (where it names one), then run Apprise on the channel's thread."""
        parts = urlsplit(config.url)
        host = apprise_host(config.url)
        if host is not None:
            await checked_addresses(host, parts.port or 0, out.guard)
        loop = asyncio.get_running_loop()
        error = await loop.run_in_executor(out.thread, _apprise_notify, _bounded(config.url, out.timeout),
                                           payload, out.timeout)
        if error is not None:
            raise DeliveryFailed(error)

    def masked(self, config: dict[str, Any]) -> dict[str, Any]:
        """Only the scheme, and the host where it is a server (not a token), are shown."""
        url = config.get("url")
        if not isinstance(url, str):
            return dict(config)
        host = apprise_host(url)
        shown = _host_only(url) if host is not None else f"{urlsplit(url).scheme}://{SECRET_MASK}"
        return {**config, "url": shown}

    def hosts(self, config: AppriseConfig) -> list[tuple[str, str]]:
        """The URL's host, where it names a server."""
        host = apprise_host(config.url)
        return [("config.url", host)] if host is not None else []

    def secrets(self, config: AppriseConfig) -> list[str]:
        """The URL and each part of it past the scheme."""
        parts = urlsplit(config.url)
        pieces = [config.url, parts.netloc, parts.path, parts.query, parts.password or "", parts.username or ""]
        pieces += [p for p in parts.path.split("/") if p]
        return [p for p in pieces if len(p) > 2]

    def problems(self, config: AppriseConfig) -> list[tuple[str, str]]:
        """The URL must be one Apprise knows (its scheme and the parts that scheme needs)."""
        if _apprise().Apprise.instantiate(config.url) is None:
            return [("config.url", "Apprise does not accept this URL (unknown scheme or missing parts)")]
        return []


CHANNELS: dict[ChannelType, Channel] = {
    ChannelType.WEBHOOK: WebhookChannel(),
    ChannelType.SLACK: SlackChannel(),
    ChannelType.EMAIL: EmailChannel(),
    ChannelType.APPRISE: AppriseChannel(),
}


def channel_of(kind: str) -> Channel:
    """The channel type called kind; ValueError listing the valid ones when there is none."""
    try:
        return CHANNELS[ChannelType(kind)]
    except ValueError:
        raise ValueError(f"unknown channel type {kind!r}; valid: {', '.join(t.value for t in ChannelType)}") from None
