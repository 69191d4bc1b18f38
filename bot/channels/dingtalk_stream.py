"""DingTalk's Stream mode: the service connects out to DingTalk over a WebSocket and receives
robot messages and card clicks on it, so a plant needs no public URL (chat-protocols.md §7.2).

The protocol is small, so it is spoken here on aiohttp's WebSocket client rather than through
the `dingtalk-stream` package, whose connection-open and token calls block the event loop and
whose keepalive can hang silently (§7.2, §8.10). Here:

- one instance holds the connection at a time: a lease row (`platform_lease`) that the holder
  renews every third of `lease_seconds`; the others wait, and one takes over within a lease
  once the holder dies or stops;
- each frame is stored in the inbox first (one insert, de-duplicated on `msgId`) and ACKed right
  after, so a frame is never acknowledged and then lost; one that cannot be stored is not
  ACKed, and DingTalk delivers it again;
- SYSTEM `ping` is echoed, `disconnect` and a dropped socket reconnect with jittered backoff,
  and aiohttp's heartbeat is the watchdog for a socket that went silent: a WebSocket ping every
  two leases (20 s by default), the connection closed when no pong comes back within a lease,
  so a dead connection is noticed about as soon as a dead instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import aiohttp

from bot import metrics
from bot.channels import Edges, Health, PlatformUnavailable, Unreachable
from bot.channels.dingtalk_api import PLATFORM
from bot.channels.dingtalk_inbound import Refused
from bot.channels.token import hold_lease, release_lease
from bot.supervision import environmental

log = logging.getLogger(__name__)

TOPICS = ("/v1.0/im/bot/messages/get", "/v1.0/card/instances/callback")
UA = "safetybot/1 (aiohttp)"

# Stores what a frame holds (topic, data, the frame's messageId); the outcome for the metrics.
# Raises `Refused` for a frame that cannot be taken (it is ACKed all the same: sending it again
# would not mend it).
Taker = Callable[[str, dict[str, Any], str], Awaitable[str]]


class Disconnected(PlatformUnavailable):
    """The socket closed (DingTalk's `disconnect`, a dropped connection): connect again."""


class StreamClient:
    def __init__(self, edges: Edges, take: Taker) -> None:
        self._s = edges.settings.dingtalk
        self._clock = edges.clock
        self._instance = edges.instance
        self._take = take
        self._lease = timedelta(seconds=edges.settings.lease_seconds)
        self._key = f"dingtalk:stream:{self._s.client_id}"

    async def run(self, session: aiohttp.ClientSession, health: Health) -> None:
        """Until cancelled: wait for the lease, hold the connection while it is ours."""
        try:
            while True:
                try:
                    if not await hold_lease(self._key, self._instance, self._clock(),
                                            self._lease):
                        health.succeeded()        # standing by is healthy
                        await asyncio.sleep(self._lease.total_seconds() / 3)
                        continue
                    await self._connected(session, health)
                except Exception as exc:
                    if not environmental(exc):
                        raise                     # a bug is not waited out: it ends the loop
                    delay = health.failed(exc)
                    log.warning("dingtalk stream: %s; connecting again in %.1f s",
                                exc.__class__.__name__, delay)
                    await asyncio.sleep(delay)
        finally:
            # Cancelled at shutdown: the release runs before the app closes the database.
            with contextlib.suppress(Exception):
                await release_lease(self._key, self._instance)

    async def _connected(self, session: aiohttp.ClientSession, health: Health) -> None:
        endpoint, ticket = await self._open(session)
        async with session.ws_connect(endpoint, params={"ticket": ticket}, autoping=True,
                                      heartbeat=2 * self._lease.total_seconds()) as ws:
            metrics.STREAM_CONNECTS.labels(PLATFORM).inc()
            log.info("dingtalk stream connected")
            health.succeeded()
            renewing = asyncio.create_task(self._renew(ws))
            try:
                await self._frames(ws)
            finally:
                renewing.cancel()
                await asyncio.gather(renewing, return_exceptions=True)

    async def _open(self, session: aiohttp.ClientSession) -> tuple[str, str]:
        """`connections/open`: the endpoint and a ticket valid for 90 s, used at once."""
        url = f"{self._s.api_base.rstrip('/')}/v1.0/gateway/connections/open"
        body = {
            "clientId": self._s.client_id, "clientSecret": self._s.client_secret,
            "subscriptions": [{"type": "CALLBACK", "topic": t} for t in TOPICS]
            + [{"type": "EVENT", "topic": "*"}],
            "ua": UA, "localIp": await asyncio.to_thread(_local_ip),
        }
        try:
            async with session.post(url, json=body, timeout=aiohttp.ClientTimeout(
                    total=self._s.api_timeout_seconds)) as resp:
                answer = await resp.json(content_type=None)
                if resp.status >= 400 or not isinstance(answer, dict):
                    # Wrong credentials too are waited out (an admin rotating the secret),
                    # loudly: /readyz names the failure until it is mended.
                    code = answer.get("code", "") if isinstance(answer, dict) else ""
                    raise PlatformUnavailable(f"connections/open refused: {resp.status} {code}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unreachable(f"connections/open: {exc.__class__.__name__}") from None
        return str(answer["endpoint"]), str(answer["ticket"])

    async def _renew(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Keep the lease while connected; lost (this instance was taken for dead), let go."""
        while True:
            await asyncio.sleep(self._lease.total_seconds() / 3)
            if not await hold_lease(self._key, self._instance, self._clock(), self._lease):
                log.warning("dingtalk stream lease taken by another instance; letting go")
                await ws.close()
                return

    async def _frames(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break                                   # CLOSE, CLOSED or ERROR
            try:
                frame = json.loads(message.data)
                headers = frame["headers"]
                kind, topic = str(frame.get("type")), str(headers.get("topic"))
            except (ValueError, KeyError, TypeError, AttributeError):
                log.warning("dingtalk stream: a frame that is not the protocol's JSON; ignored")
                continue
            if kind == "SYSTEM" and topic == "disconnect":
                raise Disconnected("DingTalk asked to reconnect")
            if kind == "SYSTEM":
                await ws.send_json(_ack(headers, frame.get("data") or "{}"))   # ping's opaque
                continue
            await self._deliver(ws, kind, topic, headers, frame.get("data"))
        raise Disconnected(f"socket closed ({ws.close_code})")

    async def _deliver(self, ws: aiohttp.ClientWebSocketResponse, kind: str, topic: str,
                       headers: dict[str, Any], data: Any) -> None:
        """Store, then ACK; a frame we cannot take is ACKed too (DingTalk cannot mend it)."""
        result = "error"
        try:
            doc = json.loads(data) if isinstance(data, str) else data
            if not isinstance(doc, dict):
                raise Refused("a frame whose data is not a JSON object")
            if kind == "EVENT" and topic not in TOPICS:
                raise Refused(f"an event of topic {topic[:60]!r}")
            result = await self._take(topic, doc, str(headers.get("messageId") or ""))
        except (Refused, ValueError) as exc:
            log.warning("dingtalk stream: frame not taken: %s", exc,
                        extra={"message_id": headers.get("messageId")})
            result = "refused"
        finally:
            metrics.CALLBACKS.labels(PLATFORM, result).inc()
        response = json.dumps({"status": "SUCCESS", "message": "OK"} if kind == "EVENT"
                              else {"response": None})
        await ws.send_json(_ack(headers, response))


def _ack(headers: dict[str, Any], data: str) -> dict[str, Any]:
    return {"code": 200, "headers": {"messageId": headers.get("messageId", ""),
                                     "contentType": "application/json"},
            "message": "OK", "data": data}


def _local_ip() -> str:
    with contextlib.suppress(OSError):
        return socket.gethostbyname(socket.gethostname())
    return "127.0.0.1"
