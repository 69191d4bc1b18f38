"""The app factory: wires settings, database, channels, inbox worker and dispatcher together.

Start-up order matters (STYLE.md): the ORM first, then HTTP clients, then the background workers,
each a `cleanup_ctx` step so that teardown runs in reverse. The ORM lives in a context variable,
so request handlers enter it through a middleware and background tasks are created inside it.

One process can do everything (`safetybot serve`), or the work can be split: `serve --no-workers`
only acknowledges callbacks, so nothing competes with them for its event loop and its database
pool, and `safetybot work` handles the inbox and sends the outbox. They meet in the database.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import timedelta
from functools import partial
from pathlib import Path

import aiohttp
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot import metrics, ops
from bot.channels import Channel, Connector, Edges, Plugin
from bot.channels.registry import PLUGINS, enabled, home_platform, limits_by_platform
from bot.clock import Clock, utc_now
from bot.db import ORM, activate, open_database
from bot.dispatcher import Dispatcher
from bot.inbox import InboxWorker
from bot.inspection import InspectionConfigError, load_inspection_rules
from bot.media import MediaStore, open_store
from bot.qualification import QualificationConfigError, load_rules
from bot.scheduling import load_calendar, load_drill_rules, load_policy
from bot.settings import SettingError, Settings
from bot.supervision import LoopHealth, Supervisor, environmental
from bot.training import TrainingConfigError, load_training_rules
from bot.wakeups import Announcer, listen
from handlers import MODULES, build_router
from handlers.router import Rules
from models.catalog import CatalogError, load_catalog
from models.emergency import EmergencyPolicy
from models.inbound import Inbound
from models.inbox import InboxEvent
from models.inspection.rules import InspectionRules
from models.outbox import OutboxMessage
from models.outgoing import limits_of
from models.people.rules import QualificationRules
from models.sql import release_leases
from models.training.rules import TrainingRules
from scheduler.jobs import Jobs

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)
INBOX = web.AppKey("inbox", InboxWorker)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
CHANNELS = web.AppKey("channels", dict[str, Channel])
SUPERVISOR = web.AppKey("supervisor", Supervisor)
SHUTDOWN_GRACE = 10           # seconds running work and ticks get to finish at shutdown
UPLOAD_LIMIT = 20 * 1024 * 1024  # web chat photos; platform callbacks have their own, smaller cap


def instance_name(settings: Settings) -> str:
    """Unique per running process on a host, and the same after a restart, so a restarted
    instance can take back the events its previous life had leased."""
    return settings.instance_id or f"{socket.gethostname()}:{settings.port}"


def hazard_rules(settings: Settings, media: MediaStore,
                 plugins: Sequence[Plugin] = PLUGINS) -> Rules:
    """The handlers' configuration; a broken category library stops start-up in one line."""
    path = Path(settings.hazard.categories_file)
    try:
        catalog = load_catalog(path)
    except CatalogError as exc:
        raise SettingError(f"SAFETYBOT_HAZARD_CATEGORIES_FILE: {exc}") from None
    h, e = settings.hazard, settings.emergency
    return Rules(
        catalog=catalog, tz=settings.tz, is_image=media.is_image,
        limits=limits_by_platform(settings, plugins), home=home_platform(settings, plugins),
        calendar=load_calendar(settings.schedule, settings.tz),
        draft_idle=timedelta(minutes=h.draft_idle_minutes),
        photo_window=timedelta(seconds=h.photo_window_seconds),
        repeat_window=timedelta(hours=h.repeat_window_hours), text_max=h.text_max_chars,
        recurrence_window=timedelta(days=h.recurrence_window_days),
        emergency=EmergencyPolicy(
            remind_every=timedelta(minutes=e.remind_minutes),
            reminders_before_deputy=e.reminders_before_deputy,
            join_within=timedelta(minutes=e.join_minutes),
            board_every=timedelta(seconds=e.board_seconds),
            review_after=timedelta(hours=e.review_hours)),
        qualification=qualification_rules(settings),
        training=training_rules(settings),
        inspection=inspection_rules(settings),
        read_codes=partial(codes_in_photo, media),
    )


def qualification_rules(settings: Settings) -> QualificationRules:
    """The certificate types and work types; a broken file stops the command in one line."""
    q = settings.qualification
    try:
        return load_rules(Path(q.certificates_file), Path(q.work_types_file))
    except QualificationConfigError as exc:
        raise SettingError(f"SAFETYBOT_QUALIFICATION_*: {exc}") from None


def training_rules(settings: Settings) -> TrainingRules:
    """Quizzes, assignments, practical checks and weak groups; a broken file stops the command
    in one line."""
    try:
        return load_training_rules(Path(settings.training.rules_file))
    except TrainingConfigError as exc:
        raise SettingError(f"SAFETYBOT_TRAINING_RULES_FILE: {exc}") from None


async def codes_in_photo(media: MediaStore, digest: str) -> list[str]:
    """The QR codes in a stored photo, decoded off the event loop (tens of milliseconds)."""
    from bot.media.qr import decode_qr
    return await asyncio.to_thread(decode_qr, await media.get(digest))


def inspection_rules(settings: Settings) -> InspectionRules:
    """By-risk frequencies, reminders and grace; a broken file stops the command in one line."""
    try:
        return load_inspection_rules(Path(settings.inspection.rules_file))
    except InspectionConfigError as exc:
        raise SettingError(f"SAFETYBOT_INSPECTION_RULES_FILE: {exc}") from None


def scheduled_jobs(settings: Settings, media: MediaStore, rules: Rules,
                   plugins: Sequence[Plugin] = PLUGINS) -> Jobs:
    """Scheduled notices reach each person on their own platform; `platform` (the first
    connected in the plug-ins' order) stands for those without one."""
    platform = home_platform(settings, plugins)
    return Jobs(load_policy(settings.schedule, settings.tz, rules.calendar), rules.catalog,
                media, platform, rules.emergency, settings.modules_on,
                limits_of(rules.limits, platform), load_drill_rules(settings.emergency),
                rules.qualification, rules.training, rules.inspection)


def chat_modules(settings: Settings) -> list[str]:
    """The modules switched on that answer in chat (the dashboard is pages only)."""
    return [name for name in settings.modules_on if name in MODULES]


def create_app(settings: Settings, *, clock: Clock = utc_now, callbacks: bool = True,
               workers: bool = True, scheduler: bool | None = None,
               on_fatal: Callable[[str], None] | None = None,
               plugins: Sequence[Plugin] = PLUGINS) -> web.Application:
    """`callbacks`: answer the platforms' callbacks (and open their streams); `workers`: run
    the inbox worker and the outbox dispatcher; `scheduler`: tick the scheduled jobs (by
    default where workers run). The operations endpoints are always there. `on_fatal` is
    called once if a background loop dies (the CLI stops the process with a non-zero exit).
    `plugins`: the platforms, each connected when its settings switch it on."""
    app = web.Application(middlewares=[_orm_context], client_max_size=UPLOAD_LIMIT)
    app[SETTINGS] = settings
    app[SUPERVISOR] = Supervisor(on_fatal)
    channels: dict[str, Channel] = {}
    app[CHANNELS] = channels
    instance = instance_name(settings)
    media = open_store(settings)
    dispatcher = Dispatcher(settings, channels=channels, media=media, clock=clock,
                            instance=instance)
    app[DISPATCHER] = dispatcher
    rules = hazard_rules(settings, media, plugins)
    jobs = scheduled_jobs(settings, media, rules, plugins)
    app[INBOX] = InboxWorker(settings, channels=channels, media=media,
                             router=build_router(chat_modules(settings)), rules=rules,
                             clock=clock,
                             instance=instance, on_handled=dispatcher.wake)

    # Without workers of its own, a process tells the others' workers (PostgreSQL only).
    announcer = None if workers or not _postgres(settings) else Announcer()
    edges = Edges(settings, _sink(app, announcer), media, clock, instance, UPLOAD_LIMIT)
    platforms = [(plugin.platform, plugin.connect(edges)) for plugin in enabled(settings, plugins)]

    app.cleanup_ctx.append(_closing(media))
    app.cleanup_ctx.append(_database)
    if workers or callbacks:
        app.cleanup_ctx.append(_platforms(platforms, channels=workers, streams=callbacks))
    if workers:
        app.cleanup_ctx.append(_background(instance))
    if workers if scheduler is None else scheduler:
        app.cleanup_ctx.append(_scheduler(jobs, clock))
    app.add_routes(ops.routes(settings, app[SUPERVISOR], clock))
    if "dashboard" in settings.modules_on:
        from bot.web import api, dashboard
        app.add_routes(dashboard.routes(settings, clock, rules.catalog, media, instance))
        app.add_routes(api.routes(settings, clock, rules.catalog))
    if callbacks:
        for _, connector in platforms:
            app.add_routes(connector.routes())
    return app


def _postgres(settings: Settings) -> bool:
    return settings.database_url.startswith(("postgres://", "asyncpg://"))


def _sink(app: web.Application, announcer: Announcer | None
          ) -> Callable[[Inbound], Awaitable[bool]]:
    async def put(event: Inbound) -> bool:
        stored = await app[INBOX].put(event)
        if stored and announcer is not None:
            announcer.poke()
        return stored

    return put


@web.middleware
async def _orm_context(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    activate(request.app[ORM])
    return await handler(request)


def _closing(media: MediaStore) -> Callable[[web.Application], AsyncIterator[None]]:
    """The media store's connections are let go last, after everything that uses them."""
    async def close(_: web.Application) -> AsyncIterator[None]:
        yield
        await media.close()

    return close


async def _database(app: web.Application) -> AsyncIterator[None]:
    ctx = await open_database(app[SETTINGS].database_url)
    app[ORM] = ctx
    yield
    with ctx:
        await ctx.close_connections()


def _platforms(platforms: list[tuple[str, Connector]], *, channels: bool, streams: bool
               ) -> Callable[[web.Application], AsyncIterator[None]]:
    """One HTTP client session for the platforms: their sending channels where workers run,
    their streams (a connection the service opens to receive) where callbacks are answered."""
    async def clients(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession() as session:
            if channels:
                for name, connector in platforms:
                    app[CHANNELS][name] = connector.channel(session)
            opened = []
            with app[ORM]:       # a stream stores events: it runs in the ORM's context
                for name, connector in platforms:
                    stream = connector.stream() if streams else None
                    if stream is not None:
                        health = LoopHealth(f"{name}-stream")
                        opened.append(asyncio.create_task(stream(session, health),
                                                          name=f"{name}-stream"))
                        app[SUPERVISOR].start(health, opened[-1])
            yield
            app[SUPERVISOR].stopping()
            for task in opened:
                task.cancel()
            await asyncio.gather(*opened, return_exceptions=True)
            app[CHANNELS].clear()

    return clients


def _background(instance: str) -> Callable[[web.Application], AsyncIterator[None]]:
    async def background(app: web.Application) -> AsyncIterator[None]:
        supervisor = app[SUPERVISOR]
        inbox, dispatcher = app[INBOX], app[DISPATCHER]
        with app[ORM]:
            try:
                released = await release_leases(instance, (InboxEvent, OutboxMessage))
            except Exception as exc:
                if not environmental(exc):
                    raise
                # The database is away at start: what we held expires in a lease anyway.
                log.warning("could not take back rows leased by a previous run: %r", exc)
            else:
                if released:
                    log.info("took back %d rows left leased by a previous run", released)
            workers = [asyncio.create_task(inbox.run(), name="inbox-worker"),
                       asyncio.create_task(dispatcher.run(), name="outbox-dispatcher")]
            supervisor.start(inbox.health, workers[0])
            supervisor.start(dispatcher.health, workers[1])
            listeners = []
            if _postgres(app[SETTINGS]):
                health = LoopHealth("wakeups")
                listeners.append(asyncio.create_task(
                    listen(app[SETTINGS].database_url, inbox.wake, health), name="wakeups"))
                supervisor.start(health, listeners[0])
        tasks = [*workers, *listeners]
        yield
        supervisor.stopping()
        inbox.stop()
        dispatcher.stop()
        # An event half-handled or a send half-made finishes rather than being cut off: that
        # is quicker for everyone, and a query cancelled mid-way keeps its connection (and the
        # database's shutdown) waiting on the server.
        _, late = await asyncio.wait(workers, timeout=SHUTDOWN_GRACE)
        for task in (*late, *listeners):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    return background


def _scheduler(jobs: Jobs, clock: Clock) -> Callable[[web.Application], AsyncIterator[None]]:
    """APScheduler only ticks; each job reads what is due from the database (scheduler/). A
    tick that meets a failing database is told to the scheduler's health; the next tick is
    the retry."""
    async def scheduler(app: web.Application) -> AsyncIterator[None]:
        running: set[asyncio.Task[object]] = set()
        health = LoopHealth("scheduler")

        async def tick() -> None:
            task = asyncio.current_task()
            assert task is not None
            running.add(task)
            try:
                activate(app[ORM])      # APScheduler runs each job in a task of its own
                report = await jobs.tick(clock(), stops_tick=environmental)
            except Exception as exc:
                if not environmental(exc):
                    raise
                health.failed(exc)
                return
            finally:
                running.discard(task)
            health.succeeded()
            if "auditor" in report.done:
                metrics.ALARMS_LATE.set(report.done["auditor"])
            if report.done.get("dialogs"):
                app[INBOX].wake()
            app[DISPATCHER].wake()

        ticker = AsyncIOScheduler(timezone=app[SETTINGS].tz)
        ticker.add_job(tick, "interval", seconds=jobs.policy.tick.total_seconds(), id="tick",
                       max_instances=1, coalesce=True)
        ticker.start()
        app[SUPERVISOR].register(health)
        yield
        health.running = False
        ticker.shutdown(wait=False)
        # A tick half-way commits or rolls back on its own; cancelling it mid-commit only
        # makes noise, so it is given a moment to finish before the database closes.
        if running:
            await asyncio.wait(running, timeout=SHUTDOWN_GRACE)
        await jobs.stop()

    return scheduler
