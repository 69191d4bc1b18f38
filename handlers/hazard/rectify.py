"""The owner's side of a ticket: accept, transfer, ask for more time, and submit the evidence.

Buttons on the owner's card and typed words (已整改, 申请延期, 转派) lead to the same dialogs.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from handlers.dialog import Dialog, Retry, Step
from handlers.hazard.cards import (
    TicketDialog,
    decided,
    extension_cards,
    guarded,
    open_click,
    owner_cards,
    review_cards,
    settle,
)
from handlers.hazard.dates import parse_date
from handlers.hazard.report import DONE_WORDS
from handlers.hazard.views import facts, when
from handlers.replies import photo_refused
from handlers.router import Context, Router
from models.dialog import Dialog as DialogRow
from models.dialog import close_dialog
from models.hazard import (
    LABELS,
    CardPurpose,
    Status,
    Ticket,
    TicketKind,
    accept,
    cancel,
    check_owner,
    check_transferer,
    open_tickets_of,
    request_extension,
    submit_evidence,
    ticket_by_id,
    ticket_numbered,
    tickets_by_id,
    transfer,
)
from models.inbound import InboundKind
from models.org import User, active_member, member_named, person
from models.outgoing import Text

router = Router()          # the owner's typed words
clicks = Router()          # the owner's card
NUMBER = re.compile(r"HZ-\d{8}-\d{4,}|GJ-\d{4,}-\d{2,}|PG-\d{4,}")  # 隐患, 改进措施, 应急评估


# ---------------------------------------------------------------------------------------------
# The dialogs


class EvidenceDialog(TicketDialog):
    """After-photos (any number) and an optional note, until 提交."""

    kind = "evidence"

    async def _ask_photos(self) -> str:
        return (f"请发送 {self.subject.number} 整改后的照片（可多张），可以附一句整改说明，"
                "发送完毕后回复“提交”。")

    async def _answer(self, text: str) -> None:
        if text in ("提交", "完成") or text.startswith(DONE_WORDS):
            if not self.data["photos"]:
                raise Retry("请先发送至少一张整改后的照片。")
            await self.submit()
            return
        limit = self.ctx.rules.text_max
        if not text or len(text) > limit:
            raise Retry(f"请发送照片，或用不超过{limit}字说明整改情况。")
        self.remember(note=text)
        await self.keep_open()
        await self.ctx.reply(Text("已记录整改说明。发送照片后回复“提交”。"))

    photos = Step(_ask_photos, _answer)

    def next_step(self) -> str:
        return "photos"      # one open question, until 提交

    async def photo(self) -> None:
        if await photo_refused(self.ctx):
            return
        self.remember(photos=[*self.data["photos"], self.ctx.event.media])
        await self.keep_open()
        if len(self.data["photos"]) == 1:
            await self.ctx.reply(Text("已收到整改照片。还有照片可以继续发送，完成后回复“提交”。"))

    async def submit(self) -> None:
        ctx, ticket = self.ctx, self.subject
        self.moved = True
        if not await guarded(ctx, ticket, submit_evidence(
                ticket, ctx.me, self.data["photos"], self.data.get("note", ""), ctx.now)):
            return
        await self.close()
        await review_cards(ctx, ticket)
        reviewer = await person(ticket.reviewer_id or "")
        await ctx.reply(Text(f"{ticket.number} 已提交复查，复查人："
                             f"{reviewer.name if reviewer else ticket.reviewer_id}。"))


async def _reason(dialog: Dialog[Any], text: str) -> str:
    if len(text) < 2 or len(text) > dialog.ctx.rules.text_max:
        raise Retry("请用一句话说明延期原因。")
    return text


async def _until(dialog: Dialog[Any], text: str) -> str:
    until = parse_date(text, dialog.ctx.local(dialog.ctx.now))
    if until is None or until <= dialog.ctx.now:
        raise Retry("没有看懂这个日期，请回复例如 12月15日、2026-12-15 或 5天。")
    return until.isoformat()


class ExtensionDialog(TicketDialog):
    """Why, then until when; the reviewer decides on a card."""

    kind = "extension"

    async def _ask_reason(self) -> str:
        return f"请说明 {self.subject.number} 申请延期的原因。"

    reason = Step(_ask_reason, _reason)
    until = Step("请回复希望延至的日期，例如 12月15日、2026-12-15 或 5天。", _until)

    async def finish(self) -> None:
        ctx, ticket = self.ctx, self.subject
        until = datetime.fromisoformat(self.data["until"])
        if await guarded(ctx, ticket, request_extension(ticket, ctx.me, self.data["reason"],
                                                        until, ctx.now)):
            await self.close()
            await extension_cards(ctx, ticket)
            await ctx.reply(Text("延期申请已提交复查人审批"
                                 f"（申请延至{when(until, ctx.rules.tz)}）。"))


class TransferDialog(TicketDialog):
    """The new owner, by name or id."""

    kind = "transfer"

    async def _ask_who(self) -> str:
        return f"请回复 {self.subject.number} 新的整改责任人的姓名或工号。"

    async def _who(self, text: str) -> None:
        to = await member_named(text)
        if to is None:
            raise Retry(f"没有找到“{text[:20]}”，请回复姓名或工号，或回复“取消”。")
        self.moved = True
        await _transfer(self.ctx, self.subject, to)

    who = Step(_ask_who, _who)


class PickDialog(Dialog[list[Ticket]]):
    """Which of the owner's open tickets is meant; then the dialog asked for (`then`)."""

    kind = "pick"

    async def _ask_pick(self) -> str:
        mine = self.subject
        titles = [(await facts(t, self.ctx.rules.catalog)).title for t in mine]
        choices = "\n".join(f"{i}. {t.number} {title}"
                            for i, (t, title) in enumerate(zip(mine, titles, strict=True), 1))
        return f"您有{len(mine)}项整改中的隐患，请回复序号选择：\n{choices}"

    async def _pick(self, text: str) -> None:
        mine = self.subject
        if not (text.isdigit() and 1 <= int(text) <= len(mine)):
            raise Retry(f"请回复 1 到 {len(mine)} 之间的序号，或回复“取消”。")
        self.moved = True
        await _start(self.ctx, mine[int(text) - 1], self.data["then"],
                     carried=self.data.get("photos"))

    pick = Step(_ask_pick, _pick)

    @classmethod
    async def load(cls, ctx: Context, row: DialogRow) -> list[Ticket]:
        return await tickets_by_id(row.data["ids"])


async def _start(ctx: Context, ticket: Ticket, kind: str, *, from_card: bool = False,
                 carried: list[str] | None = None) -> None:
    data = {"from_card": from_card, "photos": carried or []}
    dialog = {"evidence": EvidenceDialog, "extension": ExtensionDialog,
              "transfer": TransferDialog}[kind]
    if kind == "evidence" and data["photos"]:
        row = await dialog.open(ctx, "photos", ticket_id=ticket.id, data=data)
        await EvidenceDialog(ctx, row, ticket).submit()
        return
    await dialog.start(ctx, ticket, ticket_id=ticket.id, data=data)


# ---------------------------------------------------------------------------------------------
# The owner's card


@clicks.card_action(CardPurpose.ASSIGN.value)
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
        to = await active_member(chosen[0])
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


@router.on(lambda e: e.kind is InboundKind.TEXT and e.text.strip().startswith("申请延期"))
async def extension_typed(ctx: Context) -> None:
    await _pick_then(ctx, "extension")


@router.on(lambda e: e.kind is InboundKind.TEXT and e.text.strip().startswith("转派"))
async def transfer_typed(ctx: Context) -> None:
    await _pick_then(ctx, "transfer")


async def _photos_sent_first(ctx: Context) -> list[str]:
    """Photos sent just before 已整改 opened a report draft; they are the evidence instead."""
    row = await ctx.dialog("report")
    draft = await ticket_by_id(row.ticket_id) if row else None
    if draft is None or draft.area_id or draft.category or draft.description:
        return []
    await cancel(draft, ctx.me, "照片用作整改照片", ctx.now)
    await close_dialog(ctx.me.id)
    return draft.photos


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
        ticket = await ticket_numbered(named.group())
        if ticket is None:
            await ctx.reply(Text(f"没有找到 {named.group()}。"))
            return
        if ticket.kind is TicketKind.REVIEW:
            await ctx.reply(Text(f"{ticket.number} 是应急评估，请发送“应急评估”完成。"))
            return
        if not await guarded(ctx, ticket, RIGHTS[kind](ticket, ctx.me, ctx.now)):
            return
        if ticket.status is not Status.OPEN:
            await ctx.reply(Text(f"{ticket.number} 不在整改中（{LABELS[ticket.status]}）。"))
            return
        mine = [ticket]
    else:
        mine = await open_tickets_of(ctx.me.id)
    if not mine:
        await ctx.reply(Text("您目前没有整改中的隐患。"))
        return
    carried = await _photos_sent_first(ctx) if kind == "evidence" else []
    if len(mine) == 1:
        await _start(ctx, mine[0], kind, carried=carried)
        return
    await PickDialog.start(ctx, mine,
                           data={"then": kind, "ids": [t.id for t in mine], "photos": carried})


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
