"""After filing: the owner accepts, transfers, asks for more time and submits evidence; the
reviewer approves or rejects; a 重大 ticket gets its 治理方案 from the principal first.

Buttons on cards and typed words lead to the same steps. Questions that need a typed answer (a
驳回 reason, a date, a name) are dialogs; cancelling one that a card started sends the card again,
so nobody is left without a way to act.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import datetime, time, timedelta

from handlers.answers import guarded, photo_refused
from handlers.cards import Click, decided, open_click, settle
from handlers.notices import extension_cards, owner_cards, plan_cards, review_cards
from handlers.router import Context, Router
from handlers.views import facts, when
from models.catalog import Category
from models.dialog import Dialog, ask, close_dialog, open_dialog
from models.hazard import (
    LABELS,
    PLAN_FIELDS,
    CardPurpose,
    Status,
    Ticket,
    accept,
    approve,
    cancel,
    check_owner,
    check_planner,
    check_reviewer,
    check_transferer,
    decide_extension,
    reject,
    request_extension,
    set_plan,
    submit_evidence,
    transfer,
)
from models.inbound import InboundKind
from models.org import User
from models.outgoing import Text

router = Router()
NUMBER = re.compile(r"HZ-\d{8}-\d{4}")
DONE_WORDS = ("已整改", "整改完成")
DIALOG_KINDS = ("pick", "evidence", "extension", "transfer", "reject", "plan")


# ---------------------------------------------------------------------------------------------
# The owner's card


@router.card_action(CardPurpose.ASSIGN.value)
async def owner_clicked(ctx: Context) -> None:
    click = await open_click(ctx, CardPurpose.ASSIGN)
    if click is None:
        return
    ticket = click.ticket
    if click.action == "accept":
        if await decided(ctx, click, accept(ticket, ctx.me, ctx.now), "接收"):
            await ctx.reply(Text(f"已接收 {ticket.number}，整改期限"
                                 f"{when(ticket.deadline, ctx.rules.tz)}。整改完成后，点下面卡片"
                                 "上的“已整改”，或发送整改后照片并回复“已整改”。"))
            await owner_cards(ctx, ticket, with_photos=False)   # the same buttons, less 接收
        return
    # The card went to the owner and still matches the ticket (open_click), so the clicker is it.
    if not await settle(ctx, click, "处理"):
        return
    if click.action == "done":
        await _start(ctx, ticket, "evidence", from_card=True)
        return
    chosen = ctx.event.selected.get("transfer_to", [])
    if click.action == "transfer" and chosen:
        to = await User.get_or_none(id=chosen[0], active=True)
        if to is not None:
            await _transfer(ctx, ticket, to)
            return
    await _start(ctx, ticket, "transfer" if click.action == "transfer" else "extension",
                 from_card=True)


# ---------------------------------------------------------------------------------------------
# Typed commands of the owner


@router.on(lambda e: e.kind is InboundKind.TEXT and e.text.strip().startswith(DONE_WORDS))
async def done_typed(ctx: Context) -> None:
    await _pick_then(ctx, "evidence")


async def _photos_sent_first(ctx: Context) -> list[str]:
    """Photos sent just before 已整改 opened a report draft; they are the evidence instead."""
    dialog = await Dialog.get_or_none(user_id=ctx.me.id, kind="report")
    draft = await Ticket.get_or_none(id=dialog.ticket_id or 0) if dialog else None
    if draft is None or draft.area_id or draft.category or draft.description:
        return []
    await cancel(draft, ctx.me, "照片用作整改照片", ctx.now)
    await close_dialog(ctx.me.id)
    return draft.photos


@router.on(lambda e: e.kind is InboundKind.TEXT and e.text.strip().startswith("申请延期"))
async def extension_typed(ctx: Context) -> None:
    await _pick_then(ctx, "extension")


@router.on(lambda e: e.kind is InboundKind.TEXT and e.text.strip().startswith("转派"))
async def transfer_typed(ctx: Context) -> None:
    await _pick_then(ctx, "transfer")


RIGHTS: dict[str, Callable[[Ticket, User, datetime], Awaitable[None]]] = {
    "evidence": lambda ticket, actor, now: check_owner(ticket, actor, "提交整改", now),
    "extension": lambda ticket, actor, now: check_owner(ticket, actor, "申请延期", now),
    "transfer": check_transferer,
}


async def _pick_then(ctx: Context, kind: str) -> None:
    """Find the ticket meant: named by number (whoever may not act on it is refused, on
    record), the only open one of the person's, or asked for. Only then are photos sent just
    before 已整改 taken as its evidence, so a refused 已整改 leaves a report draft as it was."""
    named = NUMBER.search(ctx.event.text)
    if named:
        ticket = await Ticket.get_or_none(number=named.group())
        if ticket is None:
            await ctx.reply(Text(f"没有找到隐患 {named.group()}。"))
            return
        if not await guarded(ctx, ticket, RIGHTS[kind](ticket, ctx.me, ctx.now)):
            return
        if ticket.status is not Status.OPEN:
            await ctx.reply(Text(f"{ticket.number} 不在整改中（{LABELS[ticket.status]}）。"))
            return
        mine = [ticket]
    else:
        mine = await Ticket.filter(owner_id=ctx.me.id, status=Status.OPEN).order_by("deadline")
    if not mine:
        await ctx.reply(Text("您目前没有整改中的隐患。"))
        return
    carried = await _photos_sent_first(ctx) if kind == "evidence" else []
    if len(mine) == 1:
        await _start(ctx, mine[0], kind, carried=carried)
        return
    titles = [(await facts(t, ctx.rules.catalog)).title for t in mine]
    choices = "\n".join(f"{i}. {t.number} {title}"
                        for i, (t, title) in enumerate(zip(mine, titles, strict=True), 1))
    await open_dialog(ctx.me.id, ctx.event.platform, "pick", "pick", ctx.now,
                      ctx.rules.draft_idle, data={"then": kind, "ids": [t.id for t in mine],
                                                  "photos": carried})
    await ctx.reply(Text(f"您有{len(mine)}项整改中的隐患，请回复序号选择：\n{choices}"))


async def _start(ctx: Context, ticket: Ticket, kind: str, *, from_card: bool = False,
                 carried: list[str] | None = None) -> None:
    data = {"from_card": from_card, "photos": carried or []}
    if kind == "evidence":
        dialog = await open_dialog(ctx.me.id, ctx.event.platform, "evidence", "photos", ctx.now,
                                   ctx.rules.draft_idle, ticket_id=ticket.id, data=data)
        if dialog.data["photos"]:
            await _submit_evidence(ctx, dialog, ticket, "")
            return
        await ctx.reply(Text(f"请发送 {ticket.number} 整改后的照片（可多张），可以附一句整改"
                             "说明，发送完毕后回复“提交”。"))
    elif kind == "extension":
        await open_dialog(ctx.me.id, ctx.event.platform, "extension", "reason", ctx.now,
                          ctx.rules.draft_idle, ticket_id=ticket.id, data=data)
        await ctx.reply(Text(f"请说明 {ticket.number} 申请延期的原因。"))
    else:
        await open_dialog(ctx.me.id, ctx.event.platform, "transfer", "who", ctx.now,
                          ctx.rules.draft_idle, ticket_id=ticket.id, data=data)
        await ctx.reply(Text(f"请回复 {ticket.number} 新的整改责任人的姓名或工号。"))


# ---------------------------------------------------------------------------------------------
# Dialog steps


async def on_dialog(ctx: Context, dialog: Dialog) -> None:
    text = ctx.event.text.strip() if ctx.event.kind is InboundKind.TEXT else ""
    ticket = await Ticket.get_or_none(id=dialog.ticket_id) if dialog.ticket_id else None
    if text == "取消":
        await close_dialog(ctx.me.id)
        await ctx.reply(Text("已取消。"))
        if ticket is not None and dialog.data.get("from_card"):
            await _card_again(ctx, dialog.kind, ticket)
        return
    if dialog.kind == "pick":
        await _picked(ctx, dialog, text)
        return
    if ticket is None:
        await close_dialog(ctx.me.id)
        return
    step = {"evidence": _evidence_step, "extension": _extension_step,
            "transfer": _transfer_step, "reject": _reject_step, "plan": _plan_step}[dialog.kind]
    await step(ctx, dialog, ticket, text)


async def put_aside(ctx: Context, dialog: Dialog) -> None:
    """An unanswered question ends; a card that started it comes again, so nobody is left
    without a way to act."""
    await close_dialog(ctx.me.id)
    ticket = await Ticket.get_or_none(id=dialog.ticket_id) if dialog.ticket_id else None
    what = f"（{ticket.number}）" if ticket else ""
    await ctx.reply(Text(f"刚才的操作{what}长时间没有回复，已结束。如需继续，请重新操作。"))
    if ticket is not None and dialog.data.get("from_card"):
        await _card_again(ctx, dialog.kind, ticket)


async def _card_again(ctx: Context, kind: str, ticket: Ticket) -> None:
    if kind == "reject":
        await review_cards(ctx, ticket)
    elif kind in ("evidence", "extension", "transfer"):
        await owner_cards(ctx, ticket, with_photos=False)
    elif kind == "plan":
        await plan_cards(ctx, ticket)


async def _picked(ctx: Context, dialog: Dialog, text: str) -> None:
    ids: list[int] = dialog.data["ids"]
    if not (text.isdigit() and 1 <= int(text) <= len(ids)):
        await ctx.reply(Text(f"请回复 1 到 {len(ids)} 之间的序号，或回复“取消”。"))
        return
    ticket = await Ticket.get(id=ids[int(text) - 1])
    await _start(ctx, ticket, dialog.data["then"], carried=dialog.data.get("photos"))


async def _evidence_step(ctx: Context, dialog: Dialog, ticket: Ticket, text: str) -> None:
    event = ctx.event
    if event.kind is InboundKind.IMAGE:
        if not await photo_refused(ctx):
            dialog.data = {**dialog.data, "photos": [*dialog.data["photos"], event.media]}
            await ask(dialog, "photos", ctx.now, ctx.rules.draft_idle)
            if len(dialog.data["photos"]) == 1:
                await ctx.reply(Text("已收到整改照片。还有照片可以继续发送，完成后回复“提交”。"))
        return
    if text in ("提交", "完成") or text.startswith(DONE_WORDS):
        if not dialog.data["photos"]:
            await ctx.reply(Text("请先发送至少一张整改后的照片。"))
            return
        await _submit_evidence(ctx, dialog, ticket, dialog.data.get("note", ""))
        return
    if not text or len(text) > ctx.rules.text_max:
        await ctx.reply(Text(f"请发送照片，或用不超过{ctx.rules.text_max}字说明整改情况。"))
        return
    dialog.data = {**dialog.data, "note": text}
    await ask(dialog, "photos", ctx.now, ctx.rules.draft_idle)
    await ctx.reply(Text("已记录整改说明。发送照片后回复“提交”。"))


async def _submit_evidence(ctx: Context, dialog: Dialog, ticket: Ticket, note: str) -> None:
    if not await guarded(ctx, ticket, submit_evidence(ticket, ctx.me, dialog.data["photos"],
                                                      note, ctx.now)):
        return
    await close_dialog(ctx.me.id)
    await review_cards(ctx, ticket)
    reviewer = await User.get(id=ticket.reviewer_id or "")
    await ctx.reply(Text(f"{ticket.number} 已提交复查，复查人：{reviewer.name}。"))


async def _extension_step(ctx: Context, dialog: Dialog, ticket: Ticket, text: str) -> None:
    if dialog.step == "reason":
        if len(text) < 2 or len(text) > ctx.rules.text_max:
            await ctx.reply(Text("请用一句话说明延期原因。"))
            return
        dialog.data = {**dialog.data, "reason": text}
        await ask(dialog, "until", ctx.now, ctx.rules.draft_idle)
        await ctx.reply(Text("请回复希望延至的日期，例如 12月15日、2026-12-15 或 5天。"))
        return
    until = parse_date(text, ctx.local(ctx.now))
    if until is None or until <= ctx.now:
        await ctx.reply(Text("没有看懂这个日期，请回复例如 12月15日、2026-12-15 或 5天。"))
        return
    if await guarded(ctx, ticket, request_extension(ticket, ctx.me, dialog.data["reason"],
                                                    until, ctx.now)):
        await close_dialog(ctx.me.id)
        await extension_cards(ctx, ticket)
        await ctx.reply(Text(f"延期申请已提交复查人审批（申请延至{when(until, ctx.rules.tz)}）。"))


async def _transfer_step(ctx: Context, dialog: Dialog, ticket: Ticket, text: str) -> None:
    people = await User.filter(active=True)
    to = next((u for u in people if text in (u.id, u.name)), None)
    if to is None:
        await ctx.reply(Text(f"没有找到“{text[:20]}”，请回复姓名或工号，或回复“取消”。"))
        return
    await _transfer(ctx, ticket, to)


async def _transfer(ctx: Context, ticket: Ticket, to: User) -> None:
    """The new owner gets the card; an owner whom a safety manager relieved is told."""
    before = ticket.owner_id
    if not await guarded(ctx, ticket, transfer(ticket, ctx.me, to, ctx.now)):
        return
    await close_dialog(ctx.me.id)
    await owner_cards(ctx, ticket)
    await ctx.reply(Text(f"已将 {ticket.number} 转派给{to.name}。"))
    if before and before != ctx.me.id:
        await ctx.send(Text(f"{ticket.number} 已由{ctx.me.name}转派给{to.name}，您无需再处理。"),
                       to_users=[before])


# ---------------------------------------------------------------------------------------------
# The reviewer


@router.card_action(CardPurpose.REVIEW.value)
async def review_clicked(ctx: Context) -> None:
    click = await open_click(ctx, CardPurpose.REVIEW)
    if click is None:
        return
    ticket = click.ticket
    if click.action == "approve":
        await _approve(ctx, click)
        return
    if await decided(ctx, click, check_reviewer(ticket, ctx.me, "驳回", ctx.now), "驳回"):
        await open_dialog(ctx.me.id, ctx.event.platform, "reject", "reason", ctx.now,
                          ctx.rules.draft_idle, ticket_id=ticket.id, data={"from_card": True})
        await ctx.reply(Text(f"请回复 {ticket.number} 的驳回原因，将转告整改责任人。"))


async def _approve(ctx: Context, click: Click) -> None:
    ticket = click.ticket
    if not await decided(ctx, click, approve(ticket, ctx.me, ctx.now), "通过"):
        return
    f = await facts(ticket, ctx.rules.catalog)
    if ticket.status is not Status.CLOSED:
        await review_cards(ctx, ticket)
        await ctx.reply(Text(f"{ticket.number} 复查通过，已提交主要负责人审批。"))
        return
    await ctx.reply(Text(f"{ticket.number} 复查通过，已闭环。"))
    await ctx.send(Text(f"{ticket.number}（{f.title}）复查通过，已闭环。感谢！"),
                   to_users=[ticket.owner_id or "", ticket.reporter_id])


async def _reject_step(ctx: Context, dialog: Dialog, ticket: Ticket, text: str) -> None:
    if len(text) < 2 or len(text) > ctx.rules.text_max:
        await ctx.reply(Text("驳回需要说明原因，请用一句话说明需要怎样重新整改。"))
        return
    rejected = await guarded(ctx, ticket, reject(ticket, ctx.me, text, ctx.now))
    await close_dialog(ctx.me.id)
    if not rejected:
        return
    await ctx.send(Text(f"{ticket.number} 复查未通过，原因：{text}。请重新整改，完成后点下面卡片"
                        f"上的“已整改”，或发送照片并回复“已整改”，期限"
                        f"{when(ticket.deadline, ctx.rules.tz)}。"),
                   to_users=[ticket.owner_id or ""])
    await owner_cards(ctx, ticket, with_photos=False)   # the reopened ticket's buttons
    await ctx.reply(Text(f"已驳回 {ticket.number}，原因已转告整改责任人。"))


# ---------------------------------------------------------------------------------------------
# Extension answers


@router.card_action(CardPurpose.EXTENSION.value)
async def extension_clicked(ctx: Context) -> None:
    click = await open_click(ctx, CardPurpose.EXTENSION)
    if click is None:
        return
    ticket = click.ticket
    yes = click.action == "yes"
    if not await decided(ctx, click, decide_extension(ticket, ctx.me, yes, ctx.now),
                         "同意延期" if yes else "不同意延期"):
        return
    answer = (f"同意延期，新的期限为{when(ticket.deadline, ctx.rules.tz)}" if yes
              else f"不同意延期，请按原期限{when(ticket.deadline, ctx.rules.tz)}完成整改")
    await ctx.send(Text(f"{ticket.number} 的延期申请：{ctx.me.name}{answer}。"),
                   to_users=[ticket.owner_id or ""])
    await owner_cards(ctx, ticket, with_photos=False)   # the owner's earlier card is stale now
    await ctx.reply(Text(f"已处理 {ticket.number} 的延期申请。"))


# ---------------------------------------------------------------------------------------------
# The 治理方案 of a 重大 ticket


@router.card_action(CardPurpose.PLAN.value)
async def plan_clicked(ctx: Context) -> None:
    click = await open_click(ctx, CardPurpose.PLAN)
    if click is None:
        return
    ticket = click.ticket
    if await decided(ctx, click, check_planner(ticket, ctx.me, ctx.now), "填写治理方案"):
        await open_dialog(ctx.me.id, ctx.event.platform, "plan", PLAN_FIELDS[0][0], ctx.now,
                          ctx.rules.draft_idle, ticket_id=ticket.id, data={"from_card": True})
        await ctx.reply(Text(f"开始制定 {ticket.number} 的治理方案，共{len(PLAN_FIELDS)}项。"
                             f"\n1. 请填写{PLAN_FIELDS[0][1]}。"))


async def _plan_step(ctx: Context, dialog: Dialog, ticket: Ticket, text: str) -> None:
    keys = [key for key, _ in PLAN_FIELDS]
    index = keys.index(dialog.step)
    default_days = _major_deadline_days(ctx, ticket)
    if dialog.step == "deadline" and text == "默认":
        text = f"{default_days}天内完成（类别默认时限）"
    if len(text) < 2 or len(text) > ctx.rules.text_max:
        await ctx.reply(Text(f"请填写{PLAN_FIELDS[index][1]}（2到{ctx.rules.text_max}字）。"))
        return
    if dialog.step == "deadline" and parse_date(text, ctx.local(ctx.now)) is None:
        await ctx.reply(Text("治理时限需要包含完成日期，例如：2026-12-31前完成，或 30天。"))
        return
    dialog.data = {**dialog.data, dialog.step: text}
    if index + 1 < len(keys):
        await ask(dialog, keys[index + 1], ctx.now, ctx.rules.draft_idle)
        hint = (f"需包含完成日期，或回复“默认”：{default_days}天"
                if keys[index + 1] == "deadline" else "")
        await ctx.reply(Text(f"{index + 2}. 请填写{PLAN_FIELDS[index + 1][1]}。{hint}"))
        return
    plan = {key: dialog.data[key] for key in keys}
    deadline = parse_date(plan["deadline"], ctx.local(ctx.now))
    assert deadline is not None
    if not await guarded(ctx, ticket, set_plan(ticket, ctx.me, plan, deadline, ctx.now)):
        return
    await close_dialog(ctx.me.id)
    await owner_cards(ctx, ticket)
    await ctx.reply(Text(f"{ticket.number} 治理方案已确定，整改期限{when(deadline, ctx.rules.tz)}"
                         "，已通知整改责任人。"))
    await ctx.send(Text(f"您上报的 {ticket.number} 已制定治理方案，进入整改。"),
                   to_users=[ticket.reporter_id])


def _major_deadline_days(ctx: Context, ticket: Ticket) -> int:
    """The category's time for a 重大 hazard (`major_deadline_days`), offered as the plan's
    default 时限."""
    category = ctx.rules.catalog.get(ticket.category)
    return category.major_deadline_days if category else Category.major_deadline_days


# ---------------------------------------------------------------------------------------------
# Dates people type


_DATE = re.compile(r"(?:(\d{4})[-/.年])?(\d{1,2})[-/.月](\d{1,2})日?")
_DAYS = re.compile(r"(\d{1,3})\s*(?:天|日)")


def parse_date(text: str, local_now: datetime) -> datetime | None:
    """The end of the named day (18:00 local, the end of a working day): a date, a month and
    day (this year, or next year if passed), or "N天" from today."""
    days = _DAYS.search(text)
    found = _DATE.search(text)
    try:
        if found:
            year = int(found.group(1) or local_now.year)
            day = local_now.replace(year=year, month=int(found.group(2)),
                                    day=int(found.group(3))).date()
            if not found.group(1) and day < local_now.date():
                day = day.replace(year=year + 1)
        elif days:
            day = (local_now + timedelta(days=int(days.group(1)))).date()
        else:
            return None
    except ValueError:
        return None
    return datetime.combine(day, time(18, 0), tzinfo=local_now.tzinfo)
