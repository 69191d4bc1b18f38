"""The scheduler with a clock the test controls: reminders, the escalation ladder, quiet hours and
the working calendar, the daily digest, the area risk status and the auditor. Ticks are called
directly as of chosen instants (no sleeping); what they decide is read back from the outbox."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from tortoise.context import TortoiseContext

from bot.db import open_database
from bot.media.folder import FolderStore
from bot.roster import load_org
from bot.scheduling import load_policy
from bot.settings import SettingError, load_settings
from models.calendar import WorkCalendar
from models.catalog import Grade, load_catalog
from models.escalation import Alarm, AlarmState, fired
from models.hazard import (
    PLAN_FIELDS,
    Ticket,
    approve,
    assignment,
    decide_extension,
    file_ticket,
    reject,
    request_extension,
    set_plan,
    submit_evidence,
)
from models.org import Area, User
from models.outbox import OutboxDelivery, OutboxMessage
from models.schedule import JobRun
from scheduler.auditor import audit_alarms
from scheduler.jobs import REPORT_LEASE, Jobs
from tests.harness import BACKEND, ROOT, ROSTER_MEDIA

TZ = ZoneInfo("Asia/Shanghai")
DEMO_ORG = ROOT / "config" / "demo-org.toml"
CATALOG = load_catalog(ROOT / "config" / "categories.toml")
MANAGERS = ["chenjianguo", "liuyang", "sunli"]     # the top of every ladder in the demo org


def at(local: str) -> datetime:
    """A Shanghai wall-clock time as the UTC instant the service stores."""
    return datetime.fromisoformat(local).replace(tzinfo=TZ).astimezone(UTC)


def make_jobs(tmp: Path, **schedule: Any) -> Jobs:
    settings = load_settings({f"SAFETYBOT_SCHEDULE_{k.upper()}": str(v)
                              for k, v in schedule.items()})
    return Jobs(load_policy(settings.schedule, settings.tz), CATALOG, FolderStore(tmp),
                "wecom")


@pytest.fixture
async def org(db: TortoiseContext) -> None:
    await load_org(DEMO_ORG, at("2026-11-01 09:00"), ROSTER_MEDIA)


@pytest.fixture
def jobs(tmp_path: Path) -> Jobs:
    return make_jobs(tmp_path)


async def open_ticket(opened: datetime, *, area: str = "A1", category: str = "F02",
                      grade: Grade = Grade.GENERAL) -> Ticket:
    """A ticket filed as the report dialog files it, due two days on at the hour it opened
    (every day a working day, which ends then: the ladder's times are counted from it); a 重大
    one opens with the principal's 治理方案 at once, its deadline two days on."""
    draft = await Ticket.create(reporter_id="zhangsan", area_id=area, category=category,
                                description="灭火器压力不足", grade=grade, created_at=opened,
                                updated_at=opened)
    kind = CATALOG.get(category)
    assert kind is not None
    await file_ticket(draft, opened, f"{opened.astimezone(TZ):%Y%m%d}",
                      await assignment(draft, kind), kind,
                      WorkCalendar(TZ, weekend=frozenset(),
                                   workday_end=opened.astimezone(TZ).time()))
    if grade is Grade.MAJOR:
        plan = {key: "按方案执行" for key, _ in PLAN_FIELDS}
        await set_plan(draft, await User.get(id="chenjianguo"), plan,
                       opened + timedelta(days=2), opened)
    await draft.refresh_from_db()
    return draft


async def outbox() -> list[tuple[str, tuple[str, ...], str]]:
    """Every queued message: key, recipients, and its words."""
    out = []
    for message in await OutboxMessage.all().order_by("id"):
        to = tuple(sorted(str(r) for r in await OutboxDelivery.filter(
            message_id=message.id).values_list("recipient", flat=True)))
        payload = message.payload
        words = payload.get("content") or " ".join(
            [payload.get("title", ""), payload.get("description", ""), payload.get("body", ""),
             *(f"{k} {v}" for k, v in payload.get("fields", []))])
        out.append((message.idempotency_key, to, str(words)))
    return out


async def alarm_messages() -> list[tuple[str, tuple[str, ...], str]]:
    return [m for m in await outbox() if m[0].startswith("alarm:")]


async def run(jobs: Jobs, *instants: datetime) -> None:
    for instant in instants:
        report = await jobs.tick(instant)
        assert not report.failed, report.summary()
        await jobs.settle()


def every(start: datetime, end: datetime, step: timedelta = timedelta(minutes=30)
          ) -> Iterator[datetime]:
    while start <= end:
        yield start
        start += step


# ---------------------------------------------------------------------------------------------
# The ladder


async def test_every_step_of_the_ladder_fires_once_and_only_once(org: None, jobs: Jobs) -> None:
    # Monday 10:00; 消防类 gives two days: due Wednesday 10:00, a working day.
    ticket = await open_ticket(at("2026-11-02 10:00"))
    assert ticket.deadline == at("2026-11-04 10:00")
    assert ticket.chain == ["zhouwei", "chenjianguo"]         # frozen when it opened
    # Every half hour until four days after the deadline, each tick run twice.
    for instant in every(at("2026-11-02 10:00"), at("2026-11-08 10:00")):
        await run(jobs, instant, instant)
    sent = [(to, words) for key, to, words in await outbox() if key.startswith("alarm:")]
    # One message per person: the last level reaches each manager on their own.
    assert [to for to, _ in sent] == [("wangqiang",), ("wangqiang",), ("zhouwei",),
                                      ("chenjianguo",), *((m,) for m in MANAGERS)]
    assert "还有约" in sent[0][1] and f"{ticket.number}" in sent[0][1]
    assert "超期" in sent[2][1] and "王强尚未接收" in sent[2][1]
    alarms = await Alarm.filter(ticket_id=ticket.id).order_by("due_at")
    assert {a.state for a in alarms} == {AlarmState.SENT}
    # Each step went out within one tick (plus the ticket's spread) of its time.
    for alarm in alarms:
        assert alarm.fired_at is not None
        assert timedelta(0) <= alarm.fired_at - alarm.due_at < timedelta(minutes=30)
    # The sent rows are the ticket's record of them, in the order they went out.
    assert [(a.label, a.recipients) for a in await fired(ticket.id)] == [
        ("整改提醒（第1次）", ["wangqiang"]), ("整改提醒（第2次）", ["wangqiang"]),
        ("第1级超期督办", ["zhouwei"]), ("第2级超期督办", ["chenjianguo"]),
        ("第3级超期督办", MANAGERS)]


async def test_a_restart_between_steps_changes_nothing(org: None, database_url: str,
                                                       tmp_path: Path) -> None:
    ticket = await open_ticket(at("2026-11-02 10:00"))
    for instant in every(at("2026-11-02 10:00"), at("2026-11-04 09:00")):
        await run(make_jobs(tmp_path), instant)
    before = await alarm_messages()
    assert len(before) == 2                           # the two reminders
    # A new process: its own connections, its own scheduler, the same database.
    other = await open_database(database_url)
    with other:
        try:
            fresh = make_jobs(tmp_path)
            await run(fresh, at("2026-11-04 09:00"), at("2026-11-04 09:30"))
            assert await alarm_messages() == before
            await run(fresh, at("2026-11-04 10:30"))
            after = await alarm_messages()
        finally:
            await other.close_connections()
    assert after[:2] == before and [to for _, to, _ in after[2:]] == [("zhouwei",)]
    assert await Alarm.filter(ticket_id=ticket.id, state=AlarmState.SENT).count() == 3


async def test_the_chain_is_frozen_when_the_ticket_opens(org: None, jobs: Jobs) -> None:
    ticket = await open_ticket(at("2026-11-02 10:00"))
    await run(jobs, at("2026-11-02 10:05"))
    await User.filter(id="wangqiang").update(supervisor_id="xuming")   # a reorganisation
    await run(jobs, at("2026-11-04 10:30"))
    [(_, to, _)] = [m for m in await outbox() if m[0].startswith("alarm:escalate")]
    assert to == ("zhouwei",)
    assert (await Ticket.get(id=ticket.id)).chain == ["zhouwei", "chenjianguo"]


async def test_one_manager_gets_one_message_for_many_tickets(org: None, jobs: Jobs) -> None:
    # Two in 1号车间 (王强) and one in 3号车间 (李华): both report to 周伟.
    tickets = [await open_ticket(at("2026-11-02 10:00"), area=area, category=category)
               for area, category in (("A1", "F02"), ("A1", "C04"), ("A3", "F02"))]
    await run(jobs, at("2026-11-04 10:30"))
    escalations = [m for m in await outbox() if m[0].startswith("alarm:escalate")]
    assert len(escalations) == 1
    _, to, words = escalations[0]
    assert to == ("zhouwei",) and "（3项）" in words
    assert all(f"{t.number}" in words for t in tickets)


async def test_an_extension_moves_the_ladder_and_closing_voids_it(org: None, jobs: Jobs) -> None:
    ticket = await open_ticket(at("2026-11-02 10:00"))
    await run(jobs, at("2026-11-02 10:05"))
    owner = await User.get(id="wangqiang")
    reviewer = await User.get(id="sunli")
    await request_extension(ticket, owner, "备件未到", at("2026-11-06 16:00"),
                            at("2026-11-03 09:00"))
    await decide_extension(ticket, reviewer, True, at("2026-11-03 09:10"))
    # The old deadline passes quietly; the reminder a day before the new one comes.
    await run(jobs, *every(at("2026-11-03 09:30"), at("2026-11-05 18:00")))
    assert [to for _, to, _ in await alarm_messages()] == [("wangqiang",)]
    assert "11月06日 16:00" in (await alarm_messages())[0][2]
    await submit_evidence(ticket, owner, ["after"], "已更换", at("2026-11-05 18:10"))
    await approve(ticket, reviewer, at("2026-11-05 18:20"))
    await run(jobs, *every(at("2026-11-05 18:30"), at("2026-11-10 12:00")))
    assert len([m for m in await outbox() if m[0].startswith("alarm:")]) == 1
    assert not await Alarm.filter(ticket_id=ticket.id, state=AlarmState.PENDING).exists()


async def test_a_submitted_ticket_waits_and_a_reopened_one_escalates(org: None,
                                                                    jobs: Jobs) -> None:
    """Overdue while the reviewer has it is the reviewer's delay, not the owner's: nothing
    escalates until the ticket is back with the owner."""
    ticket = await open_ticket(at("2026-11-02 10:00"))
    await run(jobs, at("2026-11-02 10:05"))
    await submit_evidence(ticket, await User.get(id="wangqiang"), ["after"], "",
                          at("2026-11-03 09:00"))
    await run(jobs, at("2026-11-04 11:00"))
    assert not await alarm_messages()
    await reject(ticket, await User.get(id="sunli"), "照片看不清", at("2026-11-04 11:10"))
    await run(jobs, at("2026-11-04 11:30"))
    # Back with the owner and overdue: it escalates; the reminders, now past, are not sent.
    assert [(k.split(":")[1], to) for k, to, _ in await alarm_messages()] == [
        ("escalate", ("zhouwei",))]


# ---------------------------------------------------------------------------------------------
# Working time


async def test_quiet_hours_hold_routine_reminders_until_morning(org: None, jobs: Jobs) -> None:
    # Opened Monday 23:30 with two days: the 2-hour reminder falls on Wednesday 21:30, the
    # deadline at 23:30 (quiet), so the first escalation waits for Thursday morning.
    general = await open_ticket(at("2026-11-02 23:30"))
    major = await open_ticket(at("2026-11-02 23:30"), area="A3", grade=Grade.MAJOR)
    await run(jobs, *every(at("2026-11-04 21:00"), at("2026-11-05 06:30")))
    fired = {(key.split(":")[1], to) for key, to, _ in await outbox()
             if key.startswith("alarm:")}
    assert ("escalate", ("zhouwei",)) in fired          # 重大 (李华 → 周伟) never waits
    sent = await Alarm.filter(ticket_id=general.id, state=AlarmState.SENT).count()
    assert sent == 1                                    # the 2-hour reminder, before 22:00
    assert await Alarm.filter(ticket_id=major.id, kind="escalate", level=1,
                              state=AlarmState.SENT).exists()
    # At 07:00 sharp it still waits for its share of the spread; by 07:10 it is out.
    await run(jobs, at("2026-11-05 07:10"))
    assert await Alarm.filter(ticket_id=general.id, kind="escalate", level=1,
                              state=AlarmState.SENT).exists()


async def test_weekends_and_holidays_hold_and_a_working_saturday_does_not(
        org: None, jobs: Jobs) -> None:
    # Due Saturday 2026-11-07 10:00: held over the weekend until Monday morning.
    weekend = await open_ticket(at("2026-11-05 10:00"))
    await run(jobs, *every(at("2026-11-07 09:00"), at("2026-11-08 20:00"), timedelta(hours=1)))
    assert not await Alarm.filter(ticket_id=weekend.id, kind="escalate",
                                  state=AlarmState.SENT).exists()
    await run(jobs, at("2026-11-09 07:15"))
    assert await Alarm.filter(ticket_id=weekend.id, kind="escalate", level=1,
                              state=AlarmState.SENT).exists()
    # 2026-02-28 is a Saturday worked in exchange (调休): steps go out as on a weekday.
    swapped = await open_ticket(at("2026-02-26 10:00"), area="A3")
    await run(jobs, at("2026-02-28 10:30"))
    assert await Alarm.filter(ticket_id=swapped.id, kind="escalate", level=1,
                              state=AlarmState.SENT).exists()


async def test_a_server_clock_in_utc_still_schedules_in_shanghai(
        org: None, jobs: Jobs, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        await open_ticket(at("2026-11-02 10:00"))
        # 08:20 in Shanghai is 00:20 UTC: the digest is not due at 00:19 UTC, due at 00:21.
        await run(jobs, datetime(2026, 11, 3, 0, 19, tzinfo=UTC))
        assert not [m for m in await outbox() if m[0].startswith("digest:")]
        await run(jobs, datetime(2026, 11, 3, 0, 21, tzinfo=UTC))
        [(key, _, words)] = [m for m in await outbox() if m[0].startswith("digest:")]
        assert key == "digest:2026-11-02" and "安全日报 11月02日" in words   # yesterday's
        # 22:30 in Shanghai is quiet though it is 14:30 UTC, mid-afternoon on the server.
        assert jobs.policy.calendar.opened_at(datetime(2026, 11, 3, 14, 30, tzinfo=UTC)) is None
    finally:
        monkeypatch.undo()
        time.tzset()


# ---------------------------------------------------------------------------------------------
# Daily jobs, the auditor, faults, instances


async def test_the_digest_goes_once_a_day_with_the_days_numbers(org: None, jobs: Jobs) -> None:
    await open_ticket(at("2026-11-02 10:00"))
    closed = await open_ticket(at("2026-11-02 11:00"), area="A3")
    await submit_evidence(closed, await User.get(id="lihua"), ["after"], "",
                          at("2026-11-02 15:00"))
    await approve(closed, await User.get(id="huangjun"), at("2026-11-02 16:00"))
    await run(jobs, at("2026-11-03 08:00"))
    assert not [m for m in await outbox() if m[0].startswith("digest:")]
    await run(jobs, at("2026-11-03 08:25"), at("2026-11-03 12:00"), at("2026-11-03 18:00"))
    [(_, to, words)] = [m for m in await outbox() if m[0].startswith("digest:")]
    assert to == ("liuyang", "sunli")
    assert "新增隐患：2项，闭环：1项" in words and "未闭环：1项，其中超期：0项" in words
    assert "1号车间：1 / 0 / 1 / 0" in words and "3号车间：1 / 1 / 0 / 0" in words
    await run(jobs, at("2026-11-04 08:30"))
    assert len([m for m in await outbox() if m[0].startswith("digest:")]) == 2


async def test_the_monthly_report_goes_on_the_first_once(org: None, jobs: Jobs) -> None:
    closed = await open_ticket(at("2026-11-02 10:00"), area="A3")
    await submit_evidence(closed, await User.get(id="lihua"), ["after"], "",
                          at("2026-11-03 15:00"))
    await approve(closed, await User.get(id="huangjun"), at("2026-11-03 16:00"))
    await run(jobs, at("2026-11-30 09:00"), at("2026-12-01 08:00"))
    assert not [m for m in await outbox() if m[0].startswith("monthly:")]
    await run(jobs, at("2026-12-01 08:30"), at("2026-12-01 09:00"), at("2026-12-02 08:30"))
    sent = [(key, to) for key, to, _ in await outbox() if key.startswith("monthly:")]
    assert [key for key, _ in sent] == [f"monthly:2026-11:{part}"
                                        for part in ("text", "chart", "ledger")]
    assert {to for _, to in sent} == {tuple(MANAGERS)}
    [(_, _, words)] = [m for m in await outbox() if m[0] == "monthly:2026-11:text"]
    assert "2026年11月" in words and "100" in words          # one filed, one closed


async def monthly_sent() -> list[tuple[int, str]]:
    return [(m.id, m.idempotency_key) for m in await OutboxMessage.filter(
        idempotency_key__startswith="monthly:").order_by("id")]


MONTHLY_KEYS = [f"monthly:2026-11:{part}" for part in ("text", "chart", "ledger")]


async def test_a_tick_while_the_report_is_built_does_not_start_it_again(
        org: None, jobs: Jobs, tmp_path: Path) -> None:
    await open_ticket(at("2026-11-02 10:00"))
    assert (await jobs.tick(at("2026-12-01 09:00"))).done["monthly"] == 1   # claimed, started
    # The tick does not wait for the report. While it is being built, neither this process's
    # next tick nor another instance's starts it again; once it is sent, no later one does.
    assert (await jobs.tick(at("2026-12-01 09:00:30"))).done["monthly"] == 0
    other = make_jobs(tmp_path)
    assert (await other.tick(at("2026-12-01 09:01"))).done["monthly"] == 0
    await jobs.settle()
    assert [key for _, key in await monthly_sent()] == MONTHLY_KEYS
    for instance, instant in ((jobs, "2026-12-01 09:30"), (other, "2026-12-01 12:00"),
                              (other, "2026-12-02 09:00")):
        assert (await instance.tick(at(instant))).done["monthly"] == 0
    assert [key for _, key in await monthly_sent()] == MONTHLY_KEYS


async def test_a_report_cut_off_mid_way_is_finished_by_a_later_tick_and_sent_once(
        org: None, jobs: Jobs, tmp_path: Path) -> None:
    await open_ticket(at("2026-11-02 10:00"))
    assert (await jobs.tick(at("2026-12-01 09:00"))).done["monthly"] == 1
    await jobs.stop()           # the process stops while the report is being built
    assert await monthly_sent() == []
    restarted = make_jobs(tmp_path)
    # The stopped build's lease holds for REPORT_LEASE after its start, then it is redone.
    assert (await restarted.tick(at("2026-12-01 09:00") + REPORT_LEASE / 2)).done["monthly"] == 0
    assert (await restarted.tick(at("2026-12-01 09:00") + REPORT_LEASE)).done["monthly"] == 1
    await restarted.settle()
    sent = await monthly_sent()
    assert [key for _, key in sent] == MONTHLY_KEYS
    # Stopped after queuing the messages but before marking the report finished: started
    # again a lease later, it queues nothing more and marks it finished.
    await JobRun.filter(key="monthly:2026-11:done").delete()
    assert (await restarted.tick(at("2026-12-02 09:00"))).done["monthly"] == 1
    await restarted.settle()
    assert await monthly_sent() == sent
    assert (await restarted.tick(at("2026-12-03 09:00"))).done["monthly"] == 0


async def test_area_risk_status_follows_the_rules_and_a_change_is_announced(
        org: None, jobs: Jobs) -> None:
    colour = (await Area.get(code="A1")).risk_color
    await open_ticket(at("2026-11-02 10:00"))                   # 一般, open, in 1号车间
    await run(jobs, at("2026-11-03 08:30"))
    statuses = dict(await Area.all().values_list("code", "risk_status"))
    assert statuses["A1"] == "中" and statuses["T1"] == "低"
    assert not [m for m in await outbox() if m[0].startswith("risk:")]   # first status: quiet
    await open_ticket(at("2026-11-03 09:00"), category="C04", grade=Grade.MAJOR)
    await run(jobs, at("2026-11-04 08:30"))
    a1 = await Area.get(code="A1")
    assert (a1.risk_status, a1.risk_reason) == ("高", "近3个月有重大隐患")
    assert a1.risk_color == colour                                # the inherent colour stays
    [(_, to, words)] = [m for m in await outbox() if m[0].startswith("risk:")]
    assert to == ("chat:area-a1",) and "由“中”调整为“高”" in words


async def test_the_auditor_reports_steps_that_did_not_fire(org: None, jobs: Jobs) -> None:
    ticket = await open_ticket(at("2026-11-02 10:00"))
    assert await audit_alarms(jobs.policy, at("2026-11-02 10:30")) == 1   # never armed
    await run(jobs, at("2026-11-02 10:31"))
    assert await audit_alarms(jobs.policy, at("2026-11-02 10:32")) == 0
    # Nothing ticks for a day: the 24-hour reminder is late.
    assert await audit_alarms(jobs.policy, at("2026-11-03 14:00")) == 1
    await run(jobs, at("2026-11-03 14:00"))
    assert await audit_alarms(jobs.policy, at("2026-11-03 14:01")) == 0
    assert await Alarm.filter(ticket_id=ticket.id, state=AlarmState.SENT).count() == 1


async def test_a_tick_that_fails_half_way_completes_next_time_without_duplicates(
        org: None, jobs: Jobs, db: TortoiseContext) -> None:
    """A real database error: a trigger refuses the escalation to 周伟 while the reminder to
    another owner and the digest of the same tick go through."""
    await open_ticket(at("2026-11-02 10:00"))                  # escalates to 周伟
    await open_ticket(at("2026-11-03 10:00"), area="A3", category="C04")  # reminder to 李华
    conn = db.db()
    if BACKEND == "postgres":
        await conn.execute_script("""
            CREATE FUNCTION refuse_zhouwei() RETURNS trigger AS $$ BEGIN
              IF NEW.idempotency_key LIKE 'alarm:escalate:zhouwei:%' THEN
                RAISE EXCEPTION 'injected failure';
              END IF; RETURN NEW; END $$ LANGUAGE plpgsql;
            CREATE TRIGGER refuse BEFORE INSERT ON outbox_message
              FOR EACH ROW EXECUTE FUNCTION refuse_zhouwei();""")
        drop = "DROP TRIGGER refuse ON outbox_message; DROP FUNCTION refuse_zhouwei();"
    else:
        await conn.execute_script("""
            CREATE TRIGGER refuse BEFORE INSERT ON outbox_message
            WHEN NEW.idempotency_key LIKE 'alarm:escalate:zhouwei:%'
            BEGIN SELECT RAISE(ABORT, 'injected failure'); END;""")
        drop = "DROP TRIGGER refuse;"
    try:
        await run(jobs, at("2026-11-03 10:05"))                 # arms both, reminds nobody yet
        report = await jobs.tick(at("2026-11-04 10:30"))
        assert "alarms" in report.failed and report.done["digest"] == 1
        assert not [m for m in await outbox() if m[0].startswith("alarm:")]
        assert not await Alarm.filter(state=AlarmState.SENT).exists()   # all rolled back
    finally:
        await conn.execute_script(drop)
    await run(jobs, at("2026-11-04 10:35"), at("2026-11-04 10:40"))
    alarms = [(key.split(":")[1], to) for key, to, _ in await outbox() if key.startswith("alarm:")]
    # 王强's 2-hour reminder came due with the deadline already past: the escalation says it.
    assert sorted(alarms) == [("escalate", ("zhouwei",)), ("remind", ("lihua",))]
    assert [m[0] for m in await outbox() if m[0].startswith("digest:")] == [
        "digest:2026-11-02", "digest:2026-11-03"]                 # one a day, none twice


@pytest.mark.skipif(BACKEND != "postgres", reason="SQLite is one instance by design; "
                    "several instances share a PostgreSQL database")
async def test_two_schedulers_on_one_postgresql_send_no_duplicate(
        org: None, database_url: str, tmp_path: Path) -> None:
    for n in range(40):
        await open_ticket(at("2026-11-02 10:00") + timedelta(minutes=n),
                          area=("A1", "A3", "T1", "W1")[n % 4], category="F02")
    contexts = [await open_database(database_url) for _ in range(2)]

    async def instance(ctx: TortoiseContext, jobs: Jobs) -> None:
        with ctx:
            for instant in every(at("2026-11-02 11:00"), at("2026-11-07 11:00"),
                                 timedelta(hours=2)):
                await jobs.tick(instant)      # a lost race is retried at its next tick

    try:
        await asyncio.gather(*(instance(ctx, make_jobs(tmp_path)) for ctx in contexts))
    finally:
        for ctx in contexts:
            await ctx.close_connections()
    keys = [key for key, _, _ in await outbox()]
    assert len(keys) == len(set(keys))
    sent = await Alarm.filter(state=AlarmState.SENT)
    assert len(sent) == 40 * 5
    # Each message names how many steps it carries (its key ends with the count): a step
    # fired by both instances would be carried twice.
    assert sum(int(key.rsplit(":", 1)[1]) for key in keys if key.startswith("alarm:")) == sum(
        len(a.recipients) for a in sent)


# ---------------------------------------------------------------------------------------------
# Configuration and the command line


@pytest.mark.parametrize(("name", "value", "words"), [
    ("remind_before_hours", "24,x", "hours separated by commas"),
    ("escalate_after_hours", "", "at least one level"),
    ("quiet_hours", "22-07", "HH:MM"),
    ("digest_time", "8.30", "HH:MM"),
    ("calendar_file", "config/none.toml", "does not exist"),
])
def test_a_bad_schedule_setting_is_named(tmp_path: Path, name: str, value: str,
                                        words: str) -> None:
    with pytest.raises(SettingError) as caught:
        make_jobs(tmp_path, **{name: value})
    assert f"SAFETYBOT_SCHEDULE_{name.upper()}" in str(caught.value)
    assert words in str(caught.value)


def test_a_bad_risk_rule_file_names_the_rule(tmp_path: Path) -> None:
    rules = tmp_path / "risk.toml"
    rules.write_text('[[rules]]\nstatus = "红"\n', encoding="utf-8")
    with pytest.raises(SettingError, match=r"rules\[1\]: status must be one of"):
        make_jobs(tmp_path, risk_rules_file=rules)
    rules.write_text('[[rules]]\nstatus = "高"\nat_least = 1\n', encoding="utf-8")
    with pytest.raises(SettingError, match="the last rule must have no count"):
        make_jobs(tmp_path, risk_rules_file=rules)


async def test_safetybot_tick_runs_the_jobs_as_of_a_given_time(org: None, database_url: str,
                                                                tmp_path: Path) -> None:
    await open_ticket(at("2026-11-02 10:00"))
    env = {"PATH": os.environ["PATH"], "SAFETYBOT_DATABASE_URL": database_url,
           "SAFETYBOT_MEDIA_DIR": str(tmp_path), "SAFETYBOT_LOG_LEVEL": "WARNING"}

    def tick(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bot.cli", "tick", *args], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=60)

    done = await asyncio.to_thread(tick, "--now", "2026-11-04T10:30")   # Shanghai time
    assert done.returncode == 0, done.stderr
    assert "alarms 1" in done.stdout and "ladders 1" in done.stdout
    [(_, to, _)] = [m for m in await outbox() if m[0].startswith("alarm:")]
    assert to == ("zhouwei",)
    again = await asyncio.to_thread(tick, "--now", "2026-11-04T02:31:00+00:00")
    assert "alarms 0" in again.stdout
    bad = await asyncio.to_thread(tick, "--now", "tomorrow")
    assert bad.returncode == 2 and "not an ISO time" in bad.stderr


async def test_escalation_card_reaches_the_supervisor_and_opens_the_ticket(
        db: TortoiseContext, database_url: str, media_dir: Path, tmp_path: Path) -> None:
    """End to end: the real service and the WeCom simulator; the tick runs as of the service's
    clock, moved on to an hour past the ticket's deadline."""
    from tests.plant import Person, plant, text_of

    async with plant(database_url, media_dir) as (sim, service):
        ticket = await open_ticket(service.clock())
        assert ticket.deadline is not None
        await service.time_passes(until=ticket.deadline + timedelta(hours=1))
        calendar = tmp_path / "calendar.toml"
        calendar.write_text("weekend = []\n", encoding="utf-8")   # whenever CI runs this
        await run(make_jobs(tmp_path, spread_minutes=0, quiet_hours="00:00-00:00",
                            calendar_file=calendar), service.clock())
        supervisor = Person(sim, "zhouwei")
        card = await supervisor.expect("隐患超期督办", ticket.number or "")
        assert "超期约1小时" in text_of(card) and "王强尚未接收" in text_of(card)
        await supervisor.clicks(card, "查看详情")
        details = await supervisor.expect(ticket.number or "", "1号车间")
        assert details.msgtype in ("markdown", "text")
        assert "已督办至第1级" in text_of(details)
        assert "系统 第1级超期督办：发送给周伟" in text_of(details)
