"""A target that stalls on request, for bench.coordinated_omission: `python -m bench.stall_target --port P`.

Every request is answered after about 1 ms. GET /stall?ms=N starts a stall (answered at once): for
the next N ms every request that arrives, or is still being handled, waits until the stall ends, as
a whole-process pause (GC, VM migration) would hold it.
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web

SERVICE_S = 0.001


def create_app() -> web.Application:
    """The app: GET /stall?ms=N, and any other path answered "ok" after SERVICE_S (plus any stall)."""
    stall_until = 0.0  # loop time at which the current stall ends

    async def stall(request: web.Request) -> web.Response:
        nonlocal stall_until
        loop = asyncio.get_running_loop()
        stall_until = loop.time() + int(request.query.get("ms", "1000")) / 1000.0
        return web.Response(text="stalling\n")

    async def answer(request: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(SERVICE_S)
        wait = stall_until - loop.time()
        if wait > 0:  # arrived, or was in its service time, during the stall
            await asyncio.sleep(wait)
        return web.Response(text="ok\n")

    app = web.Application()
    app.router.add_get("/stall", stall)
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(create_app(), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
