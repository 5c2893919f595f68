"""The outbound client over real loopback HTTP: redirects are answers, not invitations."""

from __future__ import annotations

import asyncio

from aiohttp import web

from engine.security.ssrf import Policy
from engine.traffic.http import make_async_client
from tests.conftest import free_port

LOOPBACK = Policy.instances(("127.0.0.0/8",))


async def serve(app, port):
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def test_redirect_to_another_host_is_not_followed():
    hits = []

    async def redirect(_):
        raise web.HTTPFound(f"http://127.0.0.1:{other_port}/steal")

    async def steal(request):
        hits.append(request.path)
        return web.Response(text="secret")

    async def scenario():
        a, b = web.Application(), web.Application()
        a.router.add_get("/health", redirect)
        b.router.add_get("/steal", steal)
        runners = [await serve(a, port), await serve(b, other_port)]
        try:
            async with make_async_client(timeout=2.0, policy=LOOPBACK) as client:
                response = await client.get(f"http://127.0.0.1:{port}/health")
                return response.status_code, response.headers["Location"]
        finally:
            for r in runners:
                await r.cleanup()

    port, other_port = free_port(), free_port()
    status, location = asyncio.run(scenario())
    assert status == 302 and location.endswith("/steal")
    assert hits == []


def test_environment_proxy_is_ignored(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")

    async def ok(_):
        return web.Response(text="ok")

    async def scenario():
        app = web.Application()
        app.router.add_get("/health", ok)
        runner = await serve(app, port)
        try:
            async with make_async_client(timeout=2.0, policy=LOOPBACK) as client:
                return (await client.get(f"http://127.0.0.1:{port}/health")).text
        finally:
            await runner.cleanup()

    port = free_port()
    assert asyncio.run(scenario()) == "ok"
