"""Card clicks on tickets: a button key is `purpose:action:task_id`, and the task id is a random
server-side record. A click is acted on only if that record exists, was sent to the clicker, is
undecided and still matches the ticket; anything else changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass

from handlers.answers import HANDLED, guarded
from handlers.router import Context
from models.audit import record
from models.hazard import CardPurpose, Ticket, TicketCard, decide_card
from models.org import User
from models.outgoing import CardUpdate, Text

ACTIONS = {
    CardPurpose.SUMMARY: {"submit", "edit", "cancel"},
    CardPurpose.ASSIGN: {"accept", "done", "transfer", "extend"},
    CardPurpose.EXTENSION: {"yes", "no"},
    CardPurpose.REVIEW: {"approve", "reject"},
    CardPurpose.PLAN: {"write"},
}


@dataclass
class Click:
    action: str
    card: TicketCard
    ticket: Ticket


async def open_click(ctx: Context, purpose: CardPurpose) -> Click | None:
    """The verified click, or None after answering why nothing happens."""
    parts = ctx.event.event_key.split(":")
    card = None
    if len(parts) == 3 and parts[1] in ACTIONS[purpose] and (
            not ctx.event.task_id or ctx.event.task_id == parts[2]):
        card = await TicketCard.filter(task_id=parts[2], purpose=purpose.value) \
            .select_related("ticket").first()
    if card is None:
        await unknown(ctx)
        return None
    ticket = card.ticket
    if ctx.me.id not in card.recipients:
        await record(at=ctx.now, actor=ctx.me.id, action="refused", subject_type="ticket",
                     subject_id=str(ticket.id), note=f"card {card.task_id} was not sent to them")
        await ctx.reply(Text("这张卡片不是发给您的，无法操作。"))
        return None
    if card.decided_by is not None or card.version != ticket.version:
        await ctx.reply(Text(await _handled_by(card)))
        return None
    return Click(parts[1], card, ticket)


async def unknown(ctx: Context) -> None:
    """A key we never issued (forged, or from another system): recorded, nothing changes."""
    await record(at=ctx.now, actor=ctx.me.id, action="refused", subject_type="card",
                 subject_id=ctx.event.task_id[:64],
                 note=f"unknown key {ctx.event.event_key[:400]}")
    await ctx.reply(Text("无法识别这个操作，请使用最新收到的卡片。"))


async def _handled_by(card: TicketCard) -> str:
    if card.decided_by:
        who = await User.get_or_none(id=card.decided_by)
        return f"该事项已由{who.name if who else card.decided_by}处理，无需再次操作。"
    return HANDLED


async def settle(ctx: Context, click: Click, shown: str) -> bool:
    """Record the click as the card's decision and grey it out for everyone who got it."""
    if not await decide_card(click.card, ctx.me.id, click.action, ctx.now):
        await ctx.reply(Text(await _handled_by(await TicketCard.get(task_id=click.card.task_id))))
        return False
    if ctx.event.response_code:
        await ctx.send(CardUpdate(ctx.event.response_code, f"已由{ctx.me.name}{shown}"))
    return True


async def decided(ctx: Context, click: Click, step: Awaitable[None], shown: str) -> bool:
    """The click's transition (or its rights check) first, then the card's decision; False, with
    the person told why, when either does not happen."""
    return await guarded(ctx, click.ticket, step) and await settle(ctx, click, shown)
