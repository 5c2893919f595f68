"""/proxy/<serviceName>/<path> on the API port: any method, forwarded through the router (balancer, breaker, retries).

Each request holds an API worker thread until the upstream answers; the traffic listener on PROXY_PORT
(engine.traffic.listener) serves the same paths on the event loop and is the fast path for traffic."""

from __future__ import annotations

from flask import Response, request
from flask.typing import ResponseReturnValue

from contract.roles import Role
from engine.api.context import runtime
from engine.api.routing import ApiBlueprint
from engine.traffic.forwarding import HOP_BY_HOP, KEY_HEADER, forwardable

__all__ = ["HOP_BY_HOP", "api"]

api = ApiBlueprint("proxy", tag="proxy")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


@api.route("GET", "/proxy/<service_name>/<path:path>", methods=METHODS, raw=True, role=Role.OPERATOR,
           summary="Forward a request to an instance of the service (operator token; ours is not forwarded)",
           errors=(404, 502, 503, 504))
def proxy(service_name: str, path: str) -> ResponseReturnValue:
    """The upstream's status, headers (minus hop-by-hop) and body, as is."""
    rt = runtime()
    headers = forwardable(list(request.headers.items()))
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
    for key, value in forwardable(received):
        response.headers.add(key, value)
    response.headers["X-Upstream-Instance"] = upstream.instance_url
    response.headers["X-Upstream-Attempts"] = str(upstream.attempts)
    return response
