"""/proxy/<serviceName>/<path>: any method, forwarded through the router (balancer, breaker, retries)."""

from __future__ import annotations

from flask import Response, request
from flask.typing import ResponseReturnValue

from contract.roles import Role
from engine.api.context import runtime
from engine.api.routing import ApiBlueprint

__all__ = ["HOP_BY_HOP", "api"]

api = ApiBlueprint("proxy", tag="proxy")
# RFC 9110 7.6.1 hop-by-hop fields, plus what the client's connection to us alone should carry
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "host", "content-length", "authorization",
})
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
KEY_HEADER = "X-Route-Key"  # consistent hashing uses it


def _forwardable(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    named = {v.strip().lower() for k, v in headers if k.lower() == "connection" for v in v.split(",")}
    return [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP and k.lower() not in named]


@api.route("GET", "/proxy/<service_name>/<path:path>", methods=METHODS, raw=True, role=Role.OPERATOR,
           summary="Forward a request to an instance of the service (operator token; ours is not forwarded)",
           errors=(404, 502, 503, 504))
def proxy(service_name: str, path: str) -> ResponseReturnValue:
    """The upstream's status, headers (minus hop-by-hop) and body, as is."""
    rt = runtime()
    headers = _forwardable(list(request.headers.items()))
    query = request.query_string.decode("utf-8", "surrogateescape")  # the router quotes it back to these bytes
    call = rt.router.send(
        service_name, request.method, path, query=query, headers=headers,
        body=request.get_data(cache=False), key=request.headers.get(KEY_HEADER),
    )
    future = rt.run_soon(call)
    router = rt.router
    upstream = future.result(timeout=(router.timeout_s + 1.0) * (router.max_retries + 1) + 1.0)
    response = Response(upstream.body, status=upstream.status)
    received = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in upstream.raw_headers]
    for key, value in _forwardable(received):
        response.headers.add(key, value)
    response.headers["X-Upstream-Instance"] = upstream.instance_url
    response.headers["X-Upstream-Attempts"] = str(upstream.attempts)
    return response
