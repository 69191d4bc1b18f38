"""The bare callback the benchmark compares SafetyBot with: aiohttp + the platform's check + one
INSERT.

It is the least any correct callback must do before answering, so the ratio against it shows
what the service's own layers cost: ORM, event parsing, metrics and the background workers
sharing the process. For WeCom: check the signature, decrypt, store the message durably with its
dedup key (`POST /wecom/callback`). For DingTalk: check the `timestamp` header (an hour either
way) and the `sign` (HMAC-SHA256 of it, compared in constant time), parse the JSON, store it
with its `msgId` (`POST /dingtalk/callback`). The checks are the service's own functions.

Run by `benchmarks/callback_bench.py` as its own process, like the service (single process,
default asyncio event loop, access log off). It serves the platforms whose credentials it finds
in the same SAFETYBOT_WECOM_* and SAFETYBOT_DINGTALK_* variables the service reads.

    python benchmarks/baseline_app.py --port 8091 --dsn postgres://postgres@127.0.0.1:5432/db
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import re
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path

import asyncpg
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.channels.dingtalk_inbound import SIGN_WINDOW_MS, signature
from bot.channels.wecom_crypto import CryptoError, WeComCrypto
from bot.db import POSTGRES_POOL_SIZE

POOL = web.AppKey("pool", asyncpg.Pool)
# A regex instead of a second XML parse: the baseline should be the cheapest honest callback.
MSG_ID = re.compile(r"<MsgId>(\d+)</MsgId>")
TABLE = """CREATE TABLE IF NOT EXISTS bench_inbox (
    id BIGSERIAL PRIMARY KEY,
    dedup_key VARCHAR(200) NOT NULL UNIQUE,
    payload TEXT NOT NULL
)"""
INSERT = "INSERT INTO bench_inbox (dedup_key, payload) VALUES ($1, $2) ON CONFLICT DO NOTHING"
Handler = Callable[[web.Request], Awaitable[web.Response]]


def wecom_callback(crypto: WeComCrypto, corp_id: str) -> Handler:
    async def receive(request: web.Request) -> web.Response:
        q = request.query
        try:
            plaintext = crypto.open_message(await request.read(), q["msg_signature"],
                                            q["timestamp"], q["nonce"])
        except (KeyError, CryptoError):
            raise web.HTTPForbidden() from None
        found = MSG_ID.search(plaintext)
        if found is None:
            raise web.HTTPBadRequest()
        await request.app[POOL].execute(INSERT, f"wecom:{corp_id}:msg:{found[1]}", plaintext)
        return web.Response(text="")

    return receive


def dingtalk_callback(secret: str) -> Handler:
    async def receive(request: web.Request) -> web.Response:
        timestamp, sign = request.headers.get("timestamp", ""), request.headers.get("sign", "")
        if (not timestamp.isdigit() or abs(time.time() * 1000 - int(timestamp)) > SIGN_WINDOW_MS
                or not hmac.compare_digest(signature(timestamp, secret).encode(),
                                           sign.encode())):
            raise web.HTTPUnauthorized()
        body = await request.read()
        try:
            msg_id = json.loads(body)["msgId"]
        except (ValueError, KeyError, TypeError):
            raise web.HTTPBadRequest() from None
        await request.app[POOL].execute(INSERT, f"dingtalk:msg:{msg_id}", body.decode())
        return web.json_response({})

    return receive


def create_app(dsn: str, pool_size: int, callbacks: list[web.RouteDef]) -> web.Application:
    async def database(app: web.Application) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=pool_size)
        await pool.execute(TABLE)
        app[POOL] = pool
        yield
        await pool.close()

    async def readyz(request: web.Request) -> web.Response:
        await request.app[POOL].fetchval("SELECT 1")
        return web.Response(text="ready")

    app = web.Application()
    app.cleanup_ctx.append(database)
    app.add_routes([*callbacks, web.get("/readyz", readyz)])
    return app


def callbacks(env: Mapping[str, str]) -> list[web.RouteDef]:
    """A route for each platform whose credentials are set."""
    routes = []
    if corp_id := env.get("SAFETYBOT_WECOM_CORP_ID"):
        crypto = WeComCrypto(env["SAFETYBOT_WECOM_TOKEN"], env["SAFETYBOT_WECOM_AES_KEY"],
                             corp_id)
        routes.append(web.post("/wecom/callback", wecom_callback(crypto, corp_id)))
    if secret := env.get("SAFETYBOT_DINGTALK_CLIENT_SECRET"):
        routes.append(web.post("/dingtalk/callback", dingtalk_callback(secret)))
    return routes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dsn", required=True)
    # The same size as the service's tortoise/asyncpg pool.
    parser.add_argument("--pool-size", type=int, default=POSTGRES_POOL_SIZE)
    args = parser.parse_args()
    routes = callbacks(os.environ)
    if not routes:
        parser.error("set SAFETYBOT_WECOM_* or SAFETYBOT_DINGTALK_CLIENT_SECRET")
    web.run_app(create_app(args.dsn, args.pool_size, routes), host=args.host,
                port=args.port, access_log=None, print=lambda *_: None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
