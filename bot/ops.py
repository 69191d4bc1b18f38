"""Operations endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot import metrics
from bot.clock import Clock
from bot.db import ORM, pending_migrations, ping
from bot.settings import Settings
from bot.supervision import Supervisor, cause
from models.inbox import InboxEvent, InboxStatus, inbox_lag
from models.outbox import DeliveryStatus, OutboxDelivery, OutboxMessage

PING_SECONDS = 3.0     # a database that takes longer to answer SELECT 1 is as good as down
INBOX_WORKER = "inbox-worker"


def routes(settings: Settings, supervisor: Supervisor, clock: Clock) -> list[web.RouteDef]:
    readiness = Readiness(settings, supervisor, clock)
    return [web.get("/healthz", healthz), web.get("/readyz", readiness.readyz),
            web.get("/metrics", readiness.prometheus)]


async def healthz(request: web.Request) -> web.Response:
    """The process answers; says nothing about its dependencies (that is /readyz)."""
    return web.json_response({"status": "ok"})


class Readiness:
    """/readyz and /metrics: what the process and the database say about the service."""

    def __init__(self, settings: Settings, supervisor: Supervisor, clock: Clock) -> None:
        self._max_lag = settings.ready_max_lag_seconds
        self._supervisor = supervisor
        self._clock = clock

    async def readyz(self, request: web.Request) -> web.Response:
        """503, naming every problem found: the database unreachable or not migrated, a
        background loop of this process not running or failing, and where this process
        handles the inbox, its oldest waiting event older than `ready_max_lag_seconds`.
        A process that only answers callbacks is not held to the inbox lag: it still takes
        callbacks well while the workers are behind."""
        problems = list(self._supervisor.problems())
        body: dict[str, object] = {}
        ctx = request.app[ORM]
        try:
            async with asyncio.timeout(PING_SECONDS):
                await ping(ctx)
                pending = await pending_migrations(ctx)
                lag = 0.0 if pending else await inbox_lag(self._clock())
        except Exception as exc:
            problems.insert(0, f"database unreachable: {cause(exc)}")
        else:
            if pending:
                problems.append(f"migrations pending: {', '.join(pending)}")
            body["inbox_lag_seconds"] = round(lag, 1)
            if INBOX_WORKER in self._supervisor.loops and lag > self._max_lag:
                problems.append(f"inbox lag {lag:.0f} s is over {self._max_lag:.0f} s")
        if problems:
            return web.json_response({"status": "not ready", "problems": problems, **body},
                                     status=503)
        return web.json_response({"status": "ready", **body})

    async def prometheus(self, request: web.Request) -> web.Response:
        """Queue gauges are read from the database at scrape time, so every instance agrees."""
        for name, health in self._supervisor.loops.items():
            metrics.LOOP_IDLE.labels(name).set(health.idle_seconds())
        await _refresh_queue_gauges(self._clock)
        return web.Response(body=generate_latest(metrics.REGISTRY),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _refresh_queue_gauges(clock: Clock) -> None:
    metrics.INBOX_PENDING.set(await InboxEvent.filter(status=InboxStatus.PENDING).count())
    metrics.INBOX_LAG.set(await inbox_lag(clock()))
    metrics.OUTBOX_PENDING.set(
        await OutboxMessage.filter(done_at__isnull=True).count()   # by index `outbox_due`
    )
    metrics.OUTBOX_FAILED.set(
        await OutboxDelivery.filter(
            status__in=[DeliveryStatus.FAILED, DeliveryStatus.INVALID]
        ).count()
    )
