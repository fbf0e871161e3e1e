"""The floor: a bare aiohttp pass-through (parse JSON, forward on a pooled client, relay chunks).

Any `POST /v1/<path>` goes to UPSTREAM_URL + `/<path>` with the upstream's key, as any aiohttp proxy must;
no auth, no accounting, no access log (nmproxy runs without one too).

No proxy built on aiohttp can beat this; our ratio to it is the figure that matters on a noisy machine.
Usage: python bench/floor_proxy.py PORT UPSTREAM_URL
"""

from __future__ import annotations

import sys

import aiohttp
import orjson
from aiohttp import web

UPSTREAM = web.AppKey("upstream", str)
SESSION = web.AppKey("session", aiohttp.ClientSession)


async def forward(request: web.Request) -> web.StreamResponse:
    body = orjson.loads(await request.read())
    async with request.app[SESSION].post(
        request.app[UPSTREAM] + "/" + request.match_info["tail"],
        data=orjson.dumps(body),
        headers={"Content-Type": "application/json", "Authorization": "Bearer sk-bench"},
    ) as up:
        if not body.get("stream"):
            return web.Response(status=up.status, body=await up.read(), content_type="application/json")
        resp = web.StreamResponse(status=up.status, headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        async for chunk in up.content.iter_any():
            await resp.write(chunk)
        await resp.write_eof()
        return resp


async def session_ctx(app: web.Application):
    app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    yield
    await app[SESSION].close()


def main() -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    app = web.Application()
    app[UPSTREAM] = sys.argv[2]
    app.cleanup_ctx.append(session_ctx)
    app.router.add_post("/v1/{tail:.+}", forward)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
