"""Keeping certificates current (一人一档): reminders before a certificate's review or expiry,
the lapse recorded and announced after, and the qualification lines of the daily digest and
the monthly report."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

from models.calendar import WorkCalendar
from models.org import Role, people_with
from models.outbox import Queued, enqueue_many
from models.outgoing import Text
from models.people.certificates import (
    Certificate,
    Holder,
    HolderKind,
    due_today,
    expiring,
    holders_of,
    mark_lapsed,
    mark_reminded,
    reminder_due,
    superseded,
)
from models.people.figures import (
    QualificationMonth,
    month_figures,
    reason_kind,
    unqualified_for_posts,
)
from models.people.rules import QualificationRules

BATCH = 500             # certificates read and handled at a time
LISTED = 3              # named per line of the digest, which WeCom takes up to 2,048 bytes


async def remind_certificates(rules: QualificationRules, calendar: WorkCalendar,
                              now: datetime, platform: str) -> int:
    """On working days only (what fell due on a holiday is handled on the next working day;
    a reminder whose window passed meanwhile is not sent late), for every certificate whose
    day has come: the lapse, recorded and announced, or the reminder due. How many messages
    were queued. Each handled row's next day is after today, so the batches run out."""
    today = now.astimezone(calendar.tz).date()
    if not calendar.working_day(today):
        return 0
    managers = await people_with(Role.SAFETY_MANAGER)
    queued = 0
    while rows := await due_today(today, BATCH):
        queued += await _handle(rows, rules, managers, today, now, platform)
    return queued


async def _handle(rows: Sequence[Certificate], rules: QualificationRules, managers: list[str],
                  today: date, now: datetime, platform: str) -> int:
    holders = await holders_of(rows)
    replaced = await superseded(rows)
    days = rules.reminder_days

    def told(row: Certificate) -> list[str]:
        """Nobody for a certificate renewed under another number, or whose holder has left
        the roster (a company no longer engaged); else the recipients frozen at its first
        reminder for this due day, or today's."""
        holder = holders.get(row.holder)
        if row.id in replaced or holder is None or not holder.active:
            return []
        if row.notify:
            return row.notify
        own = ([row.holder_id, holder.supervisor] if row.holder_kind is HolderKind.PERSON
               else [])       # a company's documents: the safety managers deal with it
        return list(dict.fromkeys(p for p in [*own, *managers] if p))

    messages: list[Queued] = []
    lapsed = [r for r in rows if today > r.due_on]
    for row in lapsed:
        if to := told(row):
            messages.append(Queued(f"cert:{row.id}:{row.due_on}:lapsed",
                                   Text(_lapse_words(row, holders[row.holder], rules)), to))
    await mark_lapsed(lapsed, today, now)
    sent: list[tuple[Certificate, int, list[str]]] = []
    unsent = []
    for row in rows:
        if today > row.due_on:
            continue
        before = reminder_due(row.due_on, today, row.reminded, days)
        if before is None:
            unsent.append(row)
            continue
        if to := told(row):
            messages.append(Queued(f"cert:{row.id}:{row.due_on}:{before}", Text(
                _reminder_words(row, holders[row.holder], rules, today)), to))
        sent.append((row, before, to))
    await mark_reminded(sent, unsent, days)
    return await enqueue_many(messages, now=now, platform=platform) if messages else 0


def _day(day: date) -> str:
    return f"{day:%Y年%m月%d日}"


def _named(row: Certificate, holder: Holder, rules: QualificationRules) -> str:
    """`张三的特种作业操作证（低压电工作业）（编号 T1）`, or a company's document by its name."""
    kind = rules.certificates.get(row.type_code)
    if row.holder_kind is HolderKind.CONTRACTOR:
        return f"承包商{holder.name}的{kind.name if kind else row.type_code}（编号 {row.number}）"
    return f"{holder.name}的{kind.label if kind else row.type_code}（编号 {row.number}）"


def _reminder_words(row: Certificate, holder: Holder, rules: QualificationRules,
                    today: date) -> str:
    left = (row.due_on - today).days
    when = f"还有{left}天" if left else "今天是最后一天"
    if row.holder_kind is HolderKind.CONTRACTOR:
        return (f"【承包商资质到期提醒】{_named(row, holder, rules)}将于{_day(row.due_on)}到期，"
                f"{when}。请督促承包商及时办理，并更新资质信息。")
    if row.due_is_review:
        return (f"【证书复审提醒】{_named(row, holder, rules)}应于{_day(row.due_on)}前复审，"
                f"{when}。逾期未复审，证书即失效。请及时办理复审，并更新证书信息。")
    return (f"【证书到期提醒】{_named(row, holder, rules)}将于{_day(row.due_on)}到期，{when}。"
            "请及时办理换证，并更新证书信息。")


def _lapse_words(row: Certificate, holder: Holder, rules: QualificationRules) -> str:
    why = (f"未在{_day(row.due_on)}前复审" if row.due_is_review
           else f"已于{_day(row.due_on)}到期")
    since = _day(row.due_on + timedelta(days=1))
    if row.holder_kind is HolderKind.CONTRACTOR:
        return (f"【承包商资质失效】{_named(row, holder, rules)}{why}，自{since}起失效。"
                "请督促承包商及时办理，并更新资质信息。")
    needing = [w.name for w in rules.work_types.values()
               if any(row.type_code in requirement for requirement in w.certificates)]
    work = f"，不得再凭此证从事{'、'.join(needing)}" if needing else ""
    return (f"【证书失效】{_named(row, holder, rules)}{why}，自{since}起失效{work}。"
            "换证或复审后，请及时更新证书信息。")


# ---------------------------------------------------------------------------------------------
# Reports


async def digest_lines(rules: QualificationRules, today: date) -> list[str]:
    """For the daily digest: certificates due within the farthest reminder, those lapsed and
    not renewed, and the people not qualified for their post's work; nothing when all is
    well."""
    rows = await expiring(today, max(rules.reminder_days))
    holders = await holders_of(rows)
    replaced = await superseded(rows)
    rows = [r for r in rows if r.id not in replaced and r.holder in holders
            and holders[r.holder].active]
    coming = [r for r in rows if r.valid(today)]
    lapsed = [r for r in rows if not r.valid(today)]

    def listed(title: str, found: Sequence[Certificate]) -> list[str]:
        named = "、".join(_short(r, holders[r.holder], rules) for r in found[:LISTED])
        return [f"> {title}：{len(found)}项（{named}{_more(found)}）"] if found else []

    unqualified = await unqualified_for_posts(rules, today)
    people = "；".join(f"{u.name}（{u.post}）：{reason_kind(u.reason)}"
                      for u in unqualified[:LISTED])
    lines = [*listed(f"{max(rules.reminder_days)}天内到期或需复审", coming),
             *listed("已失效未换证", lapsed),
             *([f"> 不具备岗位作业资格：{len(unqualified)}人（{people}{_more(unqualified)}）"]
               if unqualified else [])]
    return ["**人员资质**", *lines] if lines else []


def _short(row: Certificate, holder: Holder, rules: QualificationRules) -> str:
    """`张三 低压电工作业 2027-01-05`"""
    kind = rules.certificates.get(row.type_code)
    return f"{holder.name} {kind.name if kind else row.type_code} {row.due_on:%Y-%m-%d}"


def _more(found: Sequence[object]) -> str:
    return "，……" if len(found) > LISTED else ""


async def month_lines(start: datetime, end: datetime) -> list[str]:
    """For the monthly report: the month [start, end)'s checks, certificates and contractor
    decisions; nothing when the month had none."""
    m = await month_figures(start, end)
    return [] if m.empty else ["**人员资质**", *_month_body(m)]


def _month_body(m: QualificationMonth) -> list[str]:
    lines = []
    if m.checks:
        lines.append(f"> 开工前资格校验：{m.checks}次，{m.named}人次，不符合{m.refused}人次"
                     f"（{m.refused_people}人）")
        if m.reasons:
            lines.append("> 主要原因：" + "、".join(f"{r} {n}人次" for r, n in m.reasons))
    lines.append(f"> 证书：新登记{m.registered}项，换证{m.renewed}项，复审{m.reviewed}项，"
                 f"失效{m.lapsed}项")
    if m.admitted or m.not_admitted or m.blacklisted_people or m.blacklisted_companies:
        lines.append(f"> 承包商：准入{m.admitted}人，不予准入{m.not_admitted}人；列入黑名单："
                     f"人员{m.blacklisted_people}人，承包商{m.blacklisted_companies}家")
    return lines
