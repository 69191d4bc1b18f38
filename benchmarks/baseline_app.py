"""The bare callback the benchmark compares SafetyBot with: aiohttp + verify/decrypt + one INSERT.

It is the least any correct WeCom callback must do before answering (check the signature, decrypt,
store the message durably with its dedup key), so the ratio against it shows what the service's
own layers cost: ORM, event parsing, metrics and the background workers sharing the process.

Run by `benchmarks/callback_bench.py` as its own process, like the service (single process,
default asyncio event loop, access log off). Credentials come from the same SAFETYBOT_WECOM_*
variables the service reads.

    python benchmarks/baseline_app.py --port 8091 --dsn postgres://postgres@127.0.0.1:5432/db
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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


def create_app(dsn: str, crypto: WeComCrypto, corp_id: str, pool_size: int) -> web.Application:
    async def database(app: web.Application) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=pool_size)
        await pool.execute(TABLE)
        app[POOL] = pool
        yield
        await pool.close()

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

    async def readyz(request: web.Request) -> web.Response:
        await request.app[POOL].fetchval("SELECT 1")
        return web.Response(text="ready")

    app = web.Application()
    app.cleanup_ctx.append(database)
    app.add_routes([web.post("/wecom/callback", receive), web.get("/readyz", readyz)])
    return app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dsn", required=True)
    # The same size as the service's tortoise/asyncpg pool.
    parser.add_argument("--pool-size", type=int, default=POSTGRES_POOL_SIZE)
    args = parser.parse_args()
    env = os.environ
    corp_id = env["SAFETYBOT_WECOM_CORP_ID"]
    crypto = WeComCrypto(env["SAFETYBOT_WECOM_TOKEN"], env["SAFETYBOT_WECOM_AES_KEY"], corp_id)
    web.run_app(create_app(args.dsn, crypto, corp_id, args.pool_size), host=args.host,
                port=args.port, access_log=None, print=lambda *_: None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
