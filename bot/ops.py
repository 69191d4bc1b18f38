"""Operations endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot import metrics
from bot.db import ORM, pending_migrations, ping
from models.messaging import (
    DeliveryStatus,
    InboxEvent,
    InboxStatus,
    OutboxDelivery,
    OutboxMessage,
)


def routes() -> list[web.RouteDef]:
    return [web.get("/healthz", healthz), web.get("/readyz", readyz),
            web.get("/metrics", prometheus)]


async def healthz(request: web.Request) -> web.Response:
    """The process answers; says nothing about its dependencies (that is /readyz)."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    ctx = request.app[ORM]
    try:
        await ping(ctx)
    except Exception as exc:
        return web.json_response({"status": "database unreachable",
                                  "error": exc.__class__.__name__}, status=503)
    pending = await pending_migrations(ctx)
    if pending:
        return web.json_response({"status": "migrations pending", "pending": pending},
                                 status=503)
    return web.json_response({"status": "ready"})


async def prometheus(request: web.Request) -> web.Response:
    """Queue gauges are read from the database at scrape time, so every instance agrees."""
    await _refresh_queue_gauges()
    return web.Response(body=generate_latest(metrics.REGISTRY),
                        headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _refresh_queue_gauges() -> None:
    pending = InboxEvent.filter(status=InboxStatus.PENDING)
    metrics.INBOX_PENDING.set(await pending.count())
    first = await pending.order_by("id").first().values_list("received_at", flat=True)
    lag = (datetime.now(UTC) - first).total_seconds() if isinstance(first, datetime) else 0.0
    metrics.INBOX_LAG.set(lag)
    metrics.OUTBOX_PENDING.set(
        await OutboxMessage.filter(done_at__isnull=True).count()   # by index `outbox_due`
    )
    metrics.OUTBOX_FAILED.set(
        await OutboxDelivery.filter(
            status__in=[DeliveryStatus.FAILED, DeliveryStatus.INVALID]
        ).count()
    )
