"""The 评估报告 of a reviewed response, drill or real, in the skeleton of AQ/T 9009 (应急演练评估
规范): the scenario, the timeline, response times per role and per person, who did not answer,
what went well, the problems and the improvement actions. A markdown summary for the chat and a
workbook with every row, sent once to the commander and the safety managers after the review."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.worksheet.worksheet import Worksheet

from models import markup, transaction
from models.emergency import headline, took
from models.emergency_review import (
    ReviewFacts,
    report_claimed,
    review_facts,
    review_number,
    reviewed,
    reviews_to_report,
)
from models.hazard import LABELS
from models.markup import literal
from models.outbox import enqueue
from models.outgoing import File, Markdown, fit
from scheduler.digest import safety_managers
from scheduler.monthly import MediaSink, table_header

TIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
RESPONSE_COLUMNS = (("姓名", 10), ("角色", 16), ("替补", 10), ("通知时间", 20), ("回复", 10),
                    ("回复时间", 20), ("响应时间（秒）", 14), ("送达", 8))
ROLE_COLUMNS = (("角色", 14), ("通知人数", 10), ("确认人数", 10), ("响应时间中位数（秒）", 20),
                ("最慢（秒）", 12))
TIMELINE_COLUMNS = (("时间", 20), ("人员", 10), ("事件", 24), ("说明", 40))
ACTION_COLUMNS = (("编号", 16), ("改进措施", 40), ("责任人", 10), ("期限", 20), ("状态", 10))
SHOWN = 12          # timeline entries and people listed in the chat summary; the workbook has all


async def send_review_reports(now: datetime, tz: ZoneInfo, media: MediaSink,
                              platform: str) -> int:
    """The reports of the reviews held since the last tick, each claimed and queued in one
    transaction, so a report is sent once even with two instances ticking."""
    sent = 0
    for activation in await reviews_to_report():
        async with transaction():
            if not await report_claimed(activation):
                continue
            facts = await review_facts(activation)
            book = await asyncio.to_thread(render_workbook, facts, tz)
            number = review_number(activation.id)
            to = sorted({activation.commander, *await safety_managers()} - {""})
            await enqueue(f"review:{activation.id}:text", Markdown(render_markdown(facts, tz)),
                          now=now, platform=platform, to_users=to)
            await enqueue(f"review:{activation.id}:book",
                          File(await media.put(book), f"{file_stem(activation.id)}.xlsx",
                               about=f"{number} 评估报告"),
                          now=now, platform=platform, to_users=to)
            sent += 1
    return sent


async def write_review_report(number: str, tz: ZoneInfo, out_dir: Path) -> list[Path]:
    """`safetybot review-report PG-0012`: the .md and .xlsx in `out_dir`; none when no review
    of that number has been held."""
    activation = await reviewed(number)
    if activation is None:
        return []
    facts = await review_facts(activation)
    text = markup.render_markdown(render_markdown(facts, tz, whole=True), room=None)
    book = await asyncio.to_thread(render_workbook, facts, tz)
    paths = [out_dir / f"{file_stem(activation.id)}{suffix}" for suffix in (".md", ".xlsx")]

    def write() -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        paths[0].write_text(text, encoding="utf-8")
        paths[1].write_bytes(book)

    await asyncio.to_thread(write)
    return paths


def file_stem(activation_id: int) -> str:
    return f"应急评估报告-{review_number(activation_id)}"


def _at(moment: datetime | None, tz: ZoneInfo) -> str:
    return f"{moment.astimezone(tz):%m月%d日 %H:%M:%S}" if moment else "—"


def _day(moment: datetime | None, tz: ZoneInfo) -> str:
    return f"{moment.astimezone(tz):%m月%d日}" if moment else "—"


def render_markdown(f: ReviewFacts, tz: ZoneInfo, *, whole: bool = False) -> str:
    """For the chat: the first lines of the timeline and the people, within one message;
    `whole`: every line, for the file."""
    shown = None if whole else SHOWN
    a = f.activation
    acked = [r for r in f.responses if r.took is not None]
    cannot = [r for r in f.responses if r.answer and r.took is None]
    lines = [f"**应急评估报告 · {headline(a, f.plan)}**（{review_number(a.id)}）",
             "**一、基本情况**",
             f"> 预案：{f.plan.name}（{f.plan.kind.value}）　级别：{a.level}　"
             f"性质：{'演练' if a.drill else '实战'}",
             f"> 区域：{f.area}　指挥：{f.commander}　评估人：{f.reviewer}",
             f"> {_at(f.started, tz)} 至 {_at(f.ended, tz)}，历时{took(f.ended - f.started)}",
             "**二、时间线**"]
    lines += [f"> {at.astimezone(tz):%H:%M:%S} {who} {what}" + (f"：{literal(note)}" if note
                                                               else "")
              for at, who, what, note in f.timeline[:shown]]
    if shown is not None and len(f.timeline) > shown:
        lines.append(f"> ……共{len(f.timeline)}条，见附件")
    lines += ["**三、响应情况**",
              f"> 通知 {len(f.responses)} 人，确认 {len(acked)} 人，无法到场 {len(cannot)} 人，"
              f"未回复 {len(f.silent)} 人"]
    lines += [f"> {r.role}：通知{r.called}人，确认{r.acknowledged}人"
              + (f"，中位数{took(r.median)}，最慢{took(r.slowest)}"
                 if r.median is not None and r.slowest is not None else "")
              for r in f.roles]
    lines += [f"> {r.name}：{took(r.took)}" for r in acked[:shown] if r.took is not None]
    lines.append("**四、未回复人员**")
    silent = f.silent if shown is None else f.silent[:shown * 2]
    lines.append("> " + ("、".join(r.name + ("（无法送达）" if r.unreachable else "")
                                  for r in silent)
                         + (f"等{len(f.silent)}人" if len(silent) < len(f.silent) else "")
                         if f.silent else "无"))
    lines += ["**五、做得好的方面**", f"> {literal(f.good)}",
              "**六、存在的问题**", f"> {literal(f.problems)}", "**七、改进措施**"]
    lines += [f"> {t.number} {literal(t.description)}（{owner}，{_day(t.deadline, tz)}前，"
              f"{LABELS[t.status]}）" for t, owner in f.actions]
    if not f.actions:
        lines.append("> 无")
    return "\n".join(lines) if whole else fit(lines, more="……（完整内容见附件）")


def render_workbook(f: ReviewFacts, tz: ZoneInfo) -> bytes:
    """Sheets 基本情况 (with what went well and the problems), 时间线, 响应情况 (per person),
    按角色, 改进措施; local times."""
    def local(moment: datetime | None) -> datetime | None:
        return moment.astimezone(tz).replace(tzinfo=None) if moment else None

    a = f.activation
    book = Workbook()
    basics = book.active
    assert isinstance(basics, Worksheet)
    basics.title = "基本情况"
    table_header(basics, (("项目", 14), ("内容", 50)))
    for row in (("评估编号", review_number(a.id)), ("预案", f.plan.name),
                ("预案类型", f.plan.kind.value), ("响应级别", a.level),
                ("性质", "演练" if a.drill else "实战"), ("区域", f.area), ("指挥", f.commander),
                ("开始", local(f.started)), ("结束", local(f.ended)),
                ("历时", took(f.ended - f.started)), ("评估人", f.reviewer),
                ("通知人数", len(f.responses)),
                ("确认人数", sum(r.took is not None for r in f.responses)),
                ("未回复人数", len(f.silent)), ("做得好的方面", f.good),
                ("存在的问题", f.problems)):
        basics.append(list(row))
    _times(basics, "B")
    timeline = _sheet(book, "时间线", TIMELINE_COLUMNS)
    for at, who, what, note in f.timeline:
        timeline.append([local(at), who, what, note])
    _times(timeline, "A")
    people = _sheet(book, "响应情况", RESPONSE_COLUMNS)
    for r in f.responses:
        people.append([r.name, "、".join(r.roles), r.deputy_for, local(r.notified_at),
                       r.answer or "未回复", local(r.answered_at),
                       _seconds(r.took),
                       "否" if r.unreachable else "是"])
    _times(people, "D", "F")
    roles = _sheet(book, "按角色", ROLE_COLUMNS)
    for role in f.roles:
        roles.append([role.role, role.called, role.acknowledged, _seconds(role.median),
                      _seconds(role.slowest)])
    found = _sheet(book, "改进措施", ACTION_COLUMNS)
    for t, owner in f.actions:
        found.append([t.number, t.description, owner, local(t.deadline), LABELS[t.status]])
    _times(found, "D")
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _seconds(span: timedelta | None) -> int | None:
    return round(span.total_seconds()) if span is not None else None


def _sheet(book: Workbook, title: str, columns: Sequence[tuple[str, int]]) -> Worksheet:
    sheet = book.create_sheet(title)
    table_header(sheet, columns)
    return sheet


def _times(sheet: Worksheet, *letters: str) -> None:
    for letter in letters:
        for cell in sheet[letter][1:]:
            if isinstance(cell.value, datetime):
                cell.number_format = TIME_FORMAT
