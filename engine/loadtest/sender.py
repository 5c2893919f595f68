"""A load test's Send through the router: the engine's share and every worker process use the same one."""

from __future__ import annotations

from contract.errors import ApiError, NotFound
from engine.loadtest.generator import Send
from engine.traffic.router import CircuitOpen, NoInstance, Router, UpstreamRefused, UpstreamTimeout, UpstreamTooLarge

__all__ = ["router_sender"]


def router_sender(router: Router, service: str, method: str, path: str) -> Send:
    """A Send that routes one request (path may end in ?query) and names the failure kind (4xx, 5xx fail)."""

    path, _, query = path.partition("?")

    async def send() -> str | None:
        try:
            upstream = await router.send(service, method, path, query=query)
        except CircuitOpen:
            return "circuit_open"
        except NoInstance:
            return "no_instance"
        except UpstreamTimeout:
            return "timeout"
        except UpstreamRefused:
            return "refused"
        except UpstreamTooLarge:
            return "too_large"
        except NotFound:
            return "service_gone"
        except ApiError:
            return "connection"
        return None if upstream.status < 400 else f"http_{upstream.status}"

    return send
