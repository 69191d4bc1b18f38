"""The `safetybot` command: serve, work, migrate, load-org, check-config."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from bot import logs
from bot.app import hazard_rules
from bot.media import MediaStore
from bot.settings import SettingError, Settings, describe, load_settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="safetybot", description="SafetyBot (安全助手)")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the service: callbacks and the workers")
    serve.add_argument("--no-workers", action="store_true",
                       help="answer callbacks only; run `safetybot work` beside it")
    commands.add_parser("work", help="run the inbox worker and the outbox dispatcher, without "
                                     "callbacks (operations endpoints on SAFETYBOT_PORT)")
    commands.add_parser("migrate", help="apply database migrations")
    load = commands.add_parser("load-org", help="import the roster (idempotent)")
    load.add_argument("file", type=Path, nargs="?", help="roster TOML (default: org_file)")
    commands.add_parser("check-config", help="validate and print the effective settings")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        hazard_rules(settings, MediaStore(Path(settings.media_dir)))  # the category library
    except SettingError as exc:
        print(f"safetybot: bad setting {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level)
    if args.command == "check-config":
        print("\n".join(describe(settings)))
        return 0
    if args.command == "migrate":
        from bot.db import migrate

        asyncio.run(migrate(settings.database_url))
        print("safetybot: database is up to date")
        return 0
    if args.command == "load-org":
        return asyncio.run(_load_org(settings, args.file or Path(settings.org_file)))
    if args.command == "work":
        return _serve(settings, callbacks=False)
    return _serve(settings, workers=not args.no_workers)


async def _load_org(settings: Settings, path: Path) -> int:
    from bot.app import utc_now
    from bot.db import open_database
    from bot.roster import RosterError, load_org

    ctx = await open_database(settings.database_url)
    with ctx:
        try:
            report = await load_org(path, utc_now())
        except RosterError as exc:
            print(f"safetybot: {path}: {exc}", file=sys.stderr)
            return 1
        finally:
            await ctx.close_connections()
    print(f"safetybot: {path}: {report.summary()}")
    return 0


def _serve(settings: Settings, *, callbacks: bool = True, workers: bool = True) -> int:
    from bot.app import create_app
    from bot.db import open_database, pending_migrations

    async def check() -> list[str]:
        ctx = await open_database(settings.database_url)
        with ctx:
            try:
                return await pending_migrations(ctx)
            finally:
                await ctx.close_connections()

    pending = asyncio.run(check())
    if pending:
        print(f"safetybot: database needs migrations ({', '.join(pending)}): "
              "run `safetybot migrate`", file=sys.stderr)
        return 2
    channels = [name for name, on in (("wecom", settings.wecom.enabled),
                                      ("webchat", settings.webchat_enabled)) if on]
    roles = [role for role, on in (("callbacks", callbacks), ("workers", workers)) if on]
    logging.getLogger("bot").info(
        "serving on http://%s:%d", settings.host, settings.port,
        extra={"channels": channels or "none: set SAFETYBOT_WECOM_* to connect WeCom",
               "running": roles},
    )
    web.run_app(create_app(settings, callbacks=callbacks, workers=workers), host=settings.host,
                port=settings.port, access_log=None, print=lambda _: None)
    return 0


def run() -> None:
    """Console-script entry point."""
    raise SystemExit(main())


if __name__ == "__main__":
    run()
