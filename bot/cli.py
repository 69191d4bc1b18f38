"""The `safetybot` command: serve, work, scheduler, tick, report, migrate, load-org, sync-org,
load-plans, load-resources, check-config, inbox and outbox (parked events and messages), and
people's files: import-certificates, import-training, export-files, verify-records; training:
load-training, export-training; inspections: load-inspections, print-checkpoints."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime, tzinfo
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from aiohttp import web
from tortoise.context import TortoiseContext

from bot import logs
from bot.app import (
    hazard_rules,
    inspection_rules,
    qualification_rules,
    scheduled_jobs,
    training_rules,
)
from bot.clock import utc_now
from bot.inspection import (
    InspectionConfigError,
    checkpoint_labels,
    load_inspections,
    parse_sites,
)
from bot.media import MediaStore, MediaUnavailable, open_store, opened, store_at
from bot.settings import SettingError, Settings, describe, is_loopback, load_settings
from bot.training import TrainingConfigError, load_training, parse_courses
from models.catalog import CatalogError, load_catalog
from scheduler.jobs import Jobs, TickReport

if TYPE_CHECKING:
    from bot.org_sync import SyncReport
    from bot.plans import ChatChange, PlansReport
    from bot.resources import LedgerReport
    from bot.roster import RosterReport

T = TypeVar("T")
# The platforms sync-org reads, and the setting that switches each on.
CONTACTS = {"wecom": "SAFETYBOT_WECOM_CORP_ID", "dingtalk": "SAFETYBOT_DINGTALK_CLIENT_ID"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="safetybot", description="SafetyBot (安全助手)")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the service: callbacks and the workers")
    serve.add_argument("--no-workers", action="store_true",
                       help="answer callbacks only; run `safetybot work` beside it")
    work = commands.add_parser("work", help="run the inbox worker and the outbox dispatcher, "
                               "without callbacks (operations endpoints on SAFETYBOT_PORT)")
    for parser_ in (serve, work):
        parser_.add_argument("--no-scheduler", action="store_true",
                             help="leave the scheduled jobs to `safetybot scheduler`")
    commands.add_parser("scheduler", help="run only the scheduled jobs (reminders, "
                                          "escalations, digests, reports)")
    tick = commands.add_parser("tick", help="run every scheduled job that is due, once")
    tick.add_argument("--now", default="", metavar="ISO-TIME",
                      help="as of this instant (default: now); a time without an offset is "
                           "in SAFETYBOT_TIMEZONE")
    report = commands.add_parser("report", help="write the monthly closure report's files")
    report.add_argument("--month", required=True, type=_month, metavar="YYYY-MM")
    report.add_argument("--out", type=Path, default=Path("reports"),
                        help="folder for the files (default: ./reports)")
    commands.add_parser("migrate", help="apply database migrations")
    load = commands.add_parser("load-org", help="import the roster (idempotent)")
    load.add_argument("file", type=Path, nargs="?", help="roster TOML (default: org_file)")
    sync = commands.add_parser("sync-org", help="update the roster from a platform's contacts")
    sync.add_argument("--from", dest="platform", required=True, choices=CONTACTS,
                      help="the platform whose departments and people to read")
    sync.add_argument("--dry-run", action="store_true",
                      help="print what would change and change nothing")
    plans = commands.add_parser("load-plans", help="import the emergency plans (idempotent)")
    plans.add_argument("dir", type=Path, nargs="?",
                       help="folder of plan files, *.toml (default: plans_dir)")
    ledger = commands.add_parser("load-resources", help="import the emergency resource ledger "
                                 "(idempotent)")
    ledger.add_argument("file", type=Path, nargs="?",
                        help="ledger TOML (default: resources_file)")
    commands.add_parser("check-config", help="validate and print the effective settings")
    store = commands.add_parser("media", help="the photo and file store").add_subparsers(
        dest="action", required=True)
    move = store.add_parser("migrate", help="copy every stored object to another store and "
                                            "verify it (switch SAFETYBOT_MEDIA_URL afterwards)")
    move.add_argument("--to", required=True, metavar="URL",
                      help="s3://bucket/prefix or file:///folder")
    commands.add_parser("check-media", help="list tickets whose photos are missing from the "
                                            "media store")
    drills = commands.add_parser("export-drills", help="write the year's drills and each plan's "
                                                       "drill status as xlsx (for 报送)")
    drills.add_argument("--year", required=True, type=int)
    drills.add_argument("--out", type=Path, default=None,
                        help="the file (default: ./应急演练-YEAR.xlsx)")
    review = commands.add_parser("review-report", help="write a held review's 评估报告 "
                                                       "(markdown and xlsx)")
    review.add_argument("number", metavar="PG-0012", help="the review's number")
    review.add_argument("--out", type=Path, default=Path("reports"),
                        help="folder for the files (default: ./reports)")
    for name, what, template in (
            ("import-certificates", "people's certificates and contractors' documents",
             "certificates"), ("import-training", "training records", "training")):
        sheet = commands.add_parser(name, help=f"import {what} from an xlsx sheet: every row "
                                    "checked, the good ones imported (idempotent)")
        sheet.add_argument("file", type=Path,
                           help=f"xlsx laid out as config/{template}-template.xlsx")
    files = commands.add_parser("export-files", help="write people's files (一人一档) as xlsx: "
                                                     "one person's, a department's or everyone's")
    which = files.add_mutually_exclusive_group()
    which.add_argument("--department", metavar="D", help="a department's id or name")
    which.add_argument("--person", metavar="P", help="a person's id or name")
    files.add_argument("--out", type=Path, default=Path("."), metavar="DIR",
                       help="folder for the file (default: the working directory)")
    courses = commands.add_parser("load-training", help="check and import the training "
                                                        "courses (idempotent)")
    courses.add_argument("dir", type=Path, nargs="?",
                         help="folder of course files, *.toml (default: training.courses_dir)")
    sites = commands.add_parser("load-inspections", help="check and import the checkpoints, "
                                "checklists, routes and patrol plans (idempotent)")
    sites.add_argument("dir", type=Path, nargs="?",
                       help="folder of inspection files, *.toml (default: inspection.sites_dir)")
    admin = commands.add_parser("add-admin", help="add a local dashboard administrator, or "
                                                  "give one a new password (printed once)")
    admin.add_argument("name")
    tokens = commands.add_parser("api-token", help="tokens for the JSON API").add_subparsers(
        dest="action", required=True)
    made = tokens.add_parser("create", help="make a token (shown once)")
    made.add_argument("name")
    made.add_argument("--write", action="store_true",
                      help="may change things (default: read only)")
    tokens.add_parser("list", help="the tokens, never their secrets")
    gone = tokens.add_parser("revoke", help="revoke a token")
    gone.add_argument("id", type=int)
    labels = commands.add_parser("print-checkpoints", help="write the checkpoints' QR labels "
                                                           "as a PDF to print")
    labels.add_argument("--area", metavar="A", help="an area's code or name (default: all)")
    labels.add_argument("--out", type=Path, required=True, metavar="FILE.pdf",
                        help="the PDF to write")
    hours = commands.add_parser("export-training", help="write a year's training hours ledger "
                                                        "(培训学时台账) as xlsx")
    hours.add_argument("--year", type=int, default=None, help="the year (default: this one)")
    hours.add_argument("--department", metavar="D", help="a department's id or name")
    hours.add_argument("--out", type=Path, default=Path("."), metavar="DIR",
                       help="folder for the file (default: the working directory)")
    commands.add_parser("verify-records", help="check every chain of people's records for an "
                                               "edit, deletion or insertion")
    for queue, what in (("inbox", "events parked after failing"),
                        ("outbox", "messages some recipients never got")):
        sub = commands.add_parser(queue, help=f"list or retry {what}").add_subparsers(
            dest="action", required=True)
        listing = sub.add_parser("parked", help=f"list {what}, the newest first")
        listing.add_argument("--limit", type=int, default=50)
        retry = sub.add_parser("retry", help="put them back in the queue, to be tried once more")
        which = retry.add_mutually_exclusive_group(required=True)
        which.add_argument("ids", type=int, nargs="*", default=[], metavar="ID")
        which.add_argument("--all", action="store_true")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingError as exc:
        return _bad_setting(exc)
    logs.configure(settings.log_level)
    if args.command == "migrate":
        from bot.db import migrate

        asyncio.run(migrate(settings.database_url))
        print("safetybot: database is up to date")
        return 0
    if args.command == "load-org":
        return asyncio.run(_load_org(settings, args.file or Path(settings.org_file)))
    if args.command == "sync-org":
        return asyncio.run(_sync_org(settings, args.platform, args.dry_run))
    if args.command == "load-plans":
        return asyncio.run(_load_plans(settings, args.dir or Path(settings.plans_dir)))
    if args.command == "load-resources":
        return asyncio.run(_load_resources(settings, args.file or Path(settings.resources_file)))
    if args.command == "media":
        return asyncio.run(_migrate_media(settings, args.to))
    if args.command == "check-media":
        return asyncio.run(_check_media(settings))
    if args.command == "export-drills":
        return _export_drills(settings, args.year, args.out or Path(f"应急演练-{args.year}.xlsx"))
    if args.command == "review-report":
        return asyncio.run(_review_report(settings, args.number, args.out))
    if args.command in ("import-certificates", "import-training"):
        return _import(settings, args.command, args.file)
    if args.command == "export-files":
        return _export_files(settings, args.department, args.person, args.out)
    if args.command == "verify-records":
        return asyncio.run(_verify_records(settings))
    if args.command == "load-training":
        return asyncio.run(_load_training(settings, args.dir or Path(
            settings.training.courses_dir)))
    if args.command == "export-training":
        return _export_training(settings, args.year, args.department, args.out)
    if args.command == "add-admin":
        return asyncio.run(_in_database(settings, lambda _: _add_admin(args.name)))
    if args.command == "api-token":
        return asyncio.run(_in_database(settings, lambda _: _api_token(args)))
    if args.command == "load-inspections":
        return asyncio.run(_load_inspections(settings, args.dir or Path(
            settings.inspection.sites_dir)))
    if args.command == "print-checkpoints":
        return asyncio.run(_print_checkpoints(settings, args.area, args.out))
    if args.command in ("inbox", "outbox"):
        if args.action == "retry" and not (args.ids or args.all):
            print(f"safetybot: {args.command} retry: name IDs or --all", file=sys.stderr)
            return 2
        return asyncio.run(_in_database(settings, lambda _: _queue(args, settings.tz)))
    # The commands above work without the category library and the schedule's files, so a bad
    # one does not stop them; the commands below use them and check them first.
    try:
        media = open_store(settings)
        jobs = scheduled_jobs(settings, media, hazard_rules(settings, media))
    except SettingError as exc:
        return _bad_setting(exc)
    if args.command == "check-config":
        return _check_config(settings)
    if args.command == "tick":
        try:
            now = _instant(args.now, settings.tz) if args.now else utc_now()
        except ValueError:
            print(f"safetybot: tick --now: not an ISO time: {args.now!r}", file=sys.stderr)
            return 2
        return asyncio.run(_tick(settings, jobs, media, now))
    if args.command == "report":
        return asyncio.run(_report(settings, jobs, args.month, args.out))
    if args.command == "scheduler":
        return _serve(settings, callbacks=False, workers=False, scheduler=True)
    if args.command == "work":
        return _serve(settings, callbacks=False, scheduler=not args.no_scheduler)
    return _serve(settings, workers=not args.no_workers,
                  scheduler=not args.no_scheduler and not args.no_workers)


def _bad_setting(exc: SettingError) -> int:
    print(f"safetybot: bad setting {exc}", file=sys.stderr)
    return 2


def _instant(text: str, tz: tzinfo) -> datetime:
    """An ISO time; without an offset it is local (SAFETYBOT_TIMEZONE), as people write it."""
    moment = datetime.fromisoformat(text)
    return (moment if moment.tzinfo else moment.replace(tzinfo=tz)).astimezone(UTC)


def _month(text: str) -> str:
    try:
        year, month = (int(part) for part in text.split("-"))
        return f"{date(year, month, 1):%Y-%m}"
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM, got {text!r}") from None


async def _in_database(settings: Settings,
                       work: Callable[[TortoiseContext], Awaitable[T]]) -> T:
    """Run `work` with the ORM open on the configured database, closing it afterwards."""
    from bot.db import open_database

    ctx = await open_database(settings.database_url)
    with ctx:
        try:
            return await work(ctx)
        finally:
            await ctx.close_connections()


async def _tick(settings: Settings, jobs: Jobs, media: MediaStore, now: datetime) -> int:
    async def tick() -> TickReport:
        report = await jobs.tick(now)
        await jobs.settle()         # the monthly report is built by a task of its own
        return report

    async with opened(media):
        report = await _in_database(settings, lambda _: tick())
    print(f"safetybot: tick: {report.summary()}")
    return 1 if report.failed else 0


async def _report(settings: Settings, jobs: Jobs, month: str, out: Path) -> int:
    from scheduler.monthly import write_monthly

    paths = await _in_database(
        settings, lambda _: write_monthly(month, settings.tz, jobs.catalog, out))
    for path in paths:
        print(f"safetybot: wrote {path}")
    return 0


async def _review_report(settings: Settings, number: str, out: Path) -> int:
    from scheduler.review_report import write_review_report

    paths = await _in_database(settings, lambda _: write_review_report(number, settings.tz, out))
    if not paths:
        print(f"safetybot: review-report: no review {number} has been held", file=sys.stderr)
        return 1
    for path in paths:
        print(f"safetybot: wrote {path}")
    return 0


async def _migrate_media(settings: Settings, url: str) -> int:
    """Copy and verify; the service keeps its store until the operator switches the setting."""
    from bot.media.moving import copy_all

    try:
        target = store_at(url, settings)
    except ValueError as exc:
        print(f"safetybot: media migrate --to: {exc}", file=sys.stderr)
        return 2
    source = open_store(settings)
    if target.url == source.url:
        print(f"safetybot: media migrate: {url} is the store in use", file=sys.stderr)
        return 2

    def progress(done: int, total: int) -> None:
        if done == total or done % 500 == 0:
            print(f"safetybot: media migrate: {done}/{total}", flush=True)

    try:
        async with opened(source), opened(target):
            report = await copy_all(source, target, progress)
    except MediaUnavailable as exc:       # a store cannot even be listed: nothing was done
        print(f"safetybot: media migrate: {exc}", file=sys.stderr)
        print(f"safetybot: keep SAFETYBOT_MEDIA_URL={source.url}", file=sys.stderr)
        return 1
    for digest, why in sorted(report.failed.items()):
        print(f"safetybot: media migrate: {digest}: {why}", file=sys.stderr)
    print(f"safetybot: media migrate: {report.copied} copied and verified, {report.present} "
          f"already in {target.url}, {len(report.failed)} failed")
    if report.failed:
        print(f"safetybot: keep SAFETYBOT_MEDIA_URL={source.url} and run it again",
              file=sys.stderr)
        return 1
    print(f"safetybot: every object is in {target.url}: stop the service, run this once more "
          f"for what arrived meanwhile, then set SAFETYBOT_MEDIA_URL={target.url}")
    return 0


async def _check_media(settings: Settings) -> int:
    from bot.media.moving import missing_photos
    from models.hazard import LABELS

    try:
        async with opened(open_store(settings)) as store:
            photos, missing = await _in_database(settings, lambda _: missing_photos(store))
    except MediaUnavailable as exc:
        print(f"safetybot: check-media: {exc}", file=sys.stderr)
        return 2
    for m in missing:
        print(f"{m.ticket}\t{LABELS[m.status]}\t整改前缺 {m.before} 张\t整改后缺 {m.after} 张")
    print(f"safetybot: check-media: {photos} photos named by tickets, looked for in "
          f"{store.url}; tickets with photos missing: {len(missing)}")
    return 1 if missing else 0


def _export_drills(settings: Settings, year: int, out: Path) -> int:
    from bot.scheduling import load_drill_rules
    from models.plan_calendar import drill_rows, plan_dates
    from scheduler.drill_export import drills_workbook

    try:
        rules = load_drill_rules(settings.emergency)
    except SettingError as exc:
        return _bad_setting(exc)

    async def read() -> bytes:
        rows = await drill_rows(settings.tz, year)
        today = utc_now().astimezone(settings.tz).date()
        return drills_workbook(year, rows, await plan_dates(rules, settings.tz, year), today)

    data = asyncio.run(_in_database(settings, lambda _: read()))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    print(f"safetybot: wrote {out}")
    return 0


def _import(settings: Settings, command: str, path: Path) -> int:
    """Bad rows a line each on stderr, then what was imported; 1 when a row was refused, 2
    when the file is not a sheet of ours."""
    from bot.people_import import (
        CERTIFICATE_COLUMNS,
        TRAINING_COLUMNS,
        NotASheet,
        import_certificates,
        import_training,
        read_rows,
    )
    from models.people.certificates import CertificateError

    certificates = command == "import-certificates"
    try:
        rows = read_rows(path, CERTIFICATE_COLUMNS if certificates else TRAINING_COLUMNS)
        classroom = (training_rules(settings).classroom
                     if "training" in settings.modules_on else None)
        run = (partial(import_certificates, rows, qualification_rules(settings))
               if certificates else partial(import_training, rows, classroom=classroom))
    except SettingError as exc:
        return _bad_setting(exc)
    except NotASheet as exc:
        print(f"safetybot: {command}: {exc}", file=sys.stderr)
        return 2
    try:
        report = asyncio.run(_in_database(settings, lambda _: run(utc_now(), settings.tz)))
    except CertificateError as exc:     # another holder's, registered while this one ran
        print(f"safetybot: {path}: {exc}; nothing imported", file=sys.stderr)
        return 1
    for line in report.refused:
        print(f"safetybot: {path}: {line}", file=sys.stderr)
    print(f"safetybot: {path}: {report.summary()}")
    return 1 if report.refused else 0


def _export_files(settings: Settings, department: str | None, person: str | None,
                  out: Path) -> int:
    from bot.people_export import ExportError, export_files

    try:
        rules = qualification_rules(settings)
    except SettingError as exc:
        return _bad_setting(exc)
    today = utc_now().astimezone(settings.tz).date()
    try:
        path = asyncio.run(_in_database(settings, lambda _: export_files(
            out, rules, today, settings.tz, department=department, person=person)))
    except ExportError as exc:
        print(f"safetybot: export-files: {exc}", file=sys.stderr)
        return 1
    print(f"safetybot: wrote {path}")
    return 0


async def _load_training(settings: Settings, directory: Path) -> int:
    try:
        rules = training_rules(settings)
        async with opened(open_store(settings)) as media:
            report = await _in_database(settings, lambda _: load_training(
                directory, rules.pass_mark, media, utc_now()))
    except SettingError as exc:
        return _bad_setting(exc)
    except TrainingConfigError as exc:
        print(f"safetybot: {exc}", file=sys.stderr)
        return 1
    print(f"safetybot: {directory}: {report.summary()}")
    return 0


async def _add_admin(name: str) -> int:
    from models.dashboard.accounts import add_admin

    if not name.strip() or len(name) > 64:
        print("safetybot: a name of 1 to 64 characters, please", file=sys.stderr)
        return 2
    password = await add_admin(name.strip(), utc_now())
    print(f"safetybot: dashboard administrator {name.strip()}, password {password} "
          "(shown once: keep it somewhere safe)")
    return 0


async def _api_token(args: argparse.Namespace) -> int:
    from models.dashboard.tokens import all_tokens, create_token, revoke_token

    if args.action == "create":
        row, token = await create_token(args.name, utc_now(), writes=args.write)
        scope = "read and write" if row.writes else "read only"
        print(f"safetybot: token {row.id} ({row.name}, {scope}): {token}")
        print("safetybot: shown once; send it as `Authorization: Bearer TOKEN`")
        return 0
    if args.action == "revoke":
        if not await revoke_token(args.id, utc_now()):
            print(f"safetybot: no live token {args.id}", file=sys.stderr)
            return 1
        print(f"safetybot: token {args.id} revoked")
        return 0
    for row in await all_tokens():
        state = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "live"
        used = f"{row.used_at:%Y-%m-%d %H:%M}" if row.used_at else "never"
        scope = "write" if row.writes else "read"
        print(f"{row.id}\t{row.name}\t{scope}\t{state}\tlast used {used}")
    return 0


def _categories(settings: Settings) -> list[str]:
    try:
        catalog = load_catalog(Path(settings.hazard.categories_file))
    except CatalogError as exc:
        raise SettingError(f"SAFETYBOT_HAZARD_CATEGORIES_FILE: {exc}") from None
    return [c.code for c in catalog.categories]


async def _load_inspections(settings: Settings, directory: Path) -> int:
    try:
        inspection_rules(settings)
        categories = _categories(settings)
        report = await _in_database(settings, lambda _: load_inspections(
            directory, categories, utc_now()))
    except SettingError as exc:
        return _bad_setting(exc)
    except InspectionConfigError as exc:
        print(f"safetybot: {exc}", file=sys.stderr)
        return 1
    print(f"safetybot: {directory}: {report.checkpoints} checkpoints, {report.routes} routes, "
          f"{report.plans} plans ({report.created} added, {report.updated} changed, "
          f"{report.unchanged} unchanged, {report.deactivated} deactivated)")
    return 0


async def _print_checkpoints(settings: Settings, area: str | None, out: Path) -> int:
    from bot.labels import write_labels

    labels = await _in_database(settings, lambda _: checkpoint_labels(area))
    if labels is None:
        print(f"safetybot: no area {area!r} in the roster", file=sys.stderr)
        return 1
    if not labels:
        print("safetybot: no checkpoints to print; load them with load-inspections",
              file=sys.stderr)
        return 1
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as fh:
        pages = write_labels(labels, fh, title="巡检点标签")
    print(f"safetybot: wrote {out} ({len(labels)} labels on {pages} "
          f"{'page' if pages == 1 else 'pages'})")
    return 0


def _export_training(settings: Settings, year: int | None, department: str | None,
                     out: Path) -> int:
    from bot.training_export import export_training

    try:
        qualification, training = qualification_rules(settings), training_rules(settings)
    except SettingError as exc:
        return _bad_setting(exc)
    year = year or utc_now().astimezone(settings.tz).year
    path = asyncio.run(_in_database(settings, lambda _: export_training(
        out, year, qualification, training, department)))
    print(f"safetybot: wrote {path}")
    return 0


async def _verify_records(settings: Settings) -> int:
    """Each broken chain's first broken link, a line each, then the count."""
    from models.people.records import verify

    chains, records, broken = await _in_database(settings, lambda _: verify())
    for link in broken:
        print(f"safetybot: verify-records: {link}")
    state = f"{len(broken)} broken" if broken else "intact"
    print(f"safetybot: verify-records: {chains} chains, {records} records: {state}")
    return 1 if broken else 0


async def _load_org(settings: Settings, path: Path) -> int:
    from bot.roster import RosterError, load_org

    try:
        async with opened(open_store(settings)) as media:
            report = await _in_database(settings, lambda _: load_org(path, utc_now(), media))
    except RosterError as exc:
        print(f"safetybot: {path}: {exc}", file=sys.stderr)
        return 1
    return _loaded(path, report, chats=report.chats, gaps=report.gaps)


async def _sync_org(settings: Settings, platform: str, dry_run: bool) -> int:
    """Read the platform's contacts, then merge them in one transaction (none in a dry run)."""
    import aiohttp

    from bot.app import instance_name
    from bot.channels import dingtalk_contacts, wecom_contacts
    from bot.org_sync import SyncError, sync_org

    wecom = platform == "wecom"
    read = wecom_contacts.read if wecom else dingtalk_contacts.read
    if not (settings.wecom if wecom else settings.dingtalk).enabled:
        print(f"safetybot: sync-org: {platform} is not configured (set {CONTACTS[platform]})",
              file=sys.stderr)
        return 2

    async def sync(_: TortoiseContext) -> SyncReport:
        async with aiohttp.ClientSession() as session:
            directory = await read(settings, session, instance_name(settings), utc_now)
        return await sync_org(directory, utc_now(), dry_run=dry_run)

    try:
        report = await _in_database(settings, sync)
    except SyncError as exc:
        print(f"safetybot: sync-org --from {platform}: {exc}", file=sys.stderr)
        return 1
    _loaded(platform, report, changes=report.lines(), chats=report.chats, gaps=report.gaps)
    if dry_run:
        print("safetybot: dry run: nothing written")
    return 0


async def _load_plans(settings: Settings, directory: Path) -> int:
    from bot.app import home_platform
    from bot.plans import PlanError, load_plans

    try:
        report = await _in_database(
            settings, lambda _: load_plans(directory, utc_now(), home_platform(settings)))
    except PlanError as exc:
        print(f"safetybot: {exc}", file=sys.stderr)
        return 1
    return _loaded(directory, report, chats=report.chats)


async def _load_resources(settings: Settings, path: Path) -> int:
    from bot.resources import LedgerError, load_resources

    try:
        report = await _in_database(
            settings, lambda _: load_resources(path, utc_now(), settings.tz))
    except LedgerError as exc:
        for problem in exc.problems:
            print(f"safetybot: {path}: {problem}", file=sys.stderr)
        return 1
    return _loaded(path, report, gaps=report.gaps)


def _loaded(source: object, report: RosterReport | PlansReport | SyncReport | LedgerReport, *,
            changes: Sequence[str] = (), chats: Sequence[ChatChange] = (),
            gaps: Sequence[str] = ()) -> int:
    """What a load did, then each change, what became of each plan chat and whom the plans
    name but can no longer call (or which kinds the ledger lacks), a line each."""
    for line in (f"{source}: {report.summary()}", *changes,
                 *(chat.summary() for chat in chats), *(f"warning: {g}" for g in gaps)):
        print(f"safetybot: {line}")
    return 0


async def _queue(args: argparse.Namespace, tz: tzinfo) -> int:
    """`inbox|outbox parked|retry`: what failed for good, and putting it back."""
    from models.inbox import inbox_parked, inbox_retry
    from models.outbox import outbox_parked, outbox_retry

    if args.action == "retry":
        ids = None if args.all else args.ids
        retry = inbox_retry if args.command == "inbox" else outbox_retry
        done = await retry(ids, utc_now())
        print(f"safetybot: {args.command}: {len(done)} put back"
              + (f" ({', '.join(map(str, done))})" if done else ""))
        missing = sorted(set(ids or ()) - set(done))
        if missing:
            print(f"safetybot: {args.command}: not parked: {', '.join(map(str, missing))}",
                  file=sys.stderr)
        return 1 if missing else 0
    if args.command == "inbox":
        events = await inbox_parked(args.limit)
        for e in events:
            print(f"{e.id}\t{e.received_at.astimezone(tz):%Y-%m-%d %H:%M:%S}\t{e.platform}:"
                  f"{e.user_id}\t{e.kind}\t{e.attempts} tries\t{_line(e.last_error)}")
        print(f"safetybot: inbox: {len(events)} parked")
        return 0
    messages = await outbox_parked(args.limit)
    for m in messages:
        print(f"{m.message.id}\t{m.message.created_at.astimezone(tz):%Y-%m-%d %H:%M:%S}\t"
              f"{m.message.platform}\t{m.message.kind}\t{','.join(m.recipients)}\t"
              f"{_line(m.error)}")
    print(f"safetybot: outbox: {len(messages)} with failed deliveries")
    return 0


def _line(error: str, width: int = 160) -> str:
    """An error on one line of a listing."""
    flat = " ".join(error.split())
    return flat if len(flat) <= width else flat[:width - 1] + "…"


def _check_config(settings: Settings) -> int:
    """The settings, then the plan files and the resource ledger: their shape only, the
    roster is in the database."""
    from bot.plans import PlanError, parse_plans
    from bot.resources import LedgerError, parse_ledger

    print("\n".join(describe(settings)))
    print(f"modules on: {', '.join(settings.modules_on)}")
    try:
        plans = parse_plans(Path(settings.plans_dir))
    except PlanError as exc:
        print(f"safetybot: {exc}", file=sys.stderr)
        return 2
    print(f"plans: {', '.join(f'{p.code} ({p.name})' for p in plans)}")
    path = Path(settings.resources_file)
    try:
        ledger = parse_ledger(path.read_text(encoding="utf-8"), utc_now().astimezone(
            settings.tz).date())
    except (OSError, UnicodeDecodeError, LedgerError) as exc:
        print(f"safetybot: {path}: {exc}", file=sys.stderr)
        return 2
    print(f"resources: {len(ledger)} in the ledger")
    try:
        rules = qualification_rules(settings)
    except SettingError as exc:
        print(f"safetybot: {exc}", file=sys.stderr)
        return 2
    print(f"qualification: {len(rules.certificates)} certificate types, "
          f"{len(rules.work_types)} work types")
    try:
        courses, _ = parse_courses(Path(settings.training.courses_dir),
                                   training_rules(settings).pass_mark)
    except (SettingError, TrainingConfigError) as exc:
        print(f"safetybot: {exc}", file=sys.stderr)
        return 2
    print(f"training: {len(courses)} courses")
    try:
        inspection_rules(settings)
        sites = parse_sites(Path(settings.inspection.sites_dir), _categories(settings))
    except (SettingError, InspectionConfigError) as exc:
        print(f"safetybot: {exc}", file=sys.stderr)
        return 2
    print(f"inspection: {len(sites.checkpoints)} checkpoints, {len(sites.routes)} routes, "
          f"{len(sites.plans)} plans")
    return 0


def _serve(settings: Settings, *, callbacks: bool = True, workers: bool = True,
           scheduler: bool = True) -> int:
    from bot.app import SUPERVISOR, create_app
    from bot.channels.registry import enabled
    from bot.db import pending_migrations

    pending = asyncio.run(_in_database(settings, pending_migrations))
    if pending:
        print(f"safetybot: database needs migrations ({', '.join(pending)}): "
              "run `safetybot migrate`", file=sys.stderr)
        return 2
    channels = [plugin.platform for plugin in enabled(settings)]
    roles = [role for role, on in (("callbacks", callbacks), ("workers", workers),
                                   ("scheduler", scheduler)) if on]
    logging.getLogger("bot").info(
        "serving on http://%s:%d", settings.host, settings.port,
        extra={"channels": channels or "none: set SAFETYBOT_WECOM_* or SAFETYBOT_DINGTALK_*",
               "modules": settings.modules_on, "running": roles},
    )
    if "dashboard" in settings.modules_on and is_loopback(settings.host):
        asyncio.run(_in_database(settings, lambda _: _first_admin(settings)))
    app = create_app(settings, callbacks=callbacks, workers=workers, scheduler=scheduler,
                     on_fatal=_stop_process)
    web.run_app(app, host=settings.host, port=settings.port, access_log=None,
                print=lambda _: None)
    if app[SUPERVISOR].fatal:
        print(f"safetybot: stopped: {app[SUPERVISOR].fatal}", file=sys.stderr)
        return 1
    return 0


async def _first_admin(settings: Settings) -> None:
    """On this computer only (`make run`): a local administrator to try the dashboard with,
    made and printed once, to the console (never to the log)."""
    from models.dashboard.accounts import add_admin, any_admin

    url = f"http://{settings.host}:{settings.port}/dashboard"
    if await any_admin():
        print(f"safetybot: dashboard at {url} (sign in as a local administrator; "
              "`safetybot add-admin NAME` sets a new password)")
        return
    password = await add_admin("admin", utc_now())
    print(f"safetybot: dashboard at {url}: user admin, password {password} "
          "(made for this computer; change it with `safetybot add-admin admin`)")


def _stop_process(reason: str) -> None:
    """A background loop died: shut down as on SIGTERM (work in flight finishes), then exit
    non-zero, so that systemd or the orchestrator starts a fresh process."""
    os.kill(os.getpid(), signal.SIGTERM)


def run() -> None:
    """Console-script entry point."""
    raise SystemExit(main())


if __name__ == "__main__":
    run()
