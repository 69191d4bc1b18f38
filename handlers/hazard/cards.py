"""The cards that move a ticket along, and their clicks.

Each card is recorded before it is sent (with the photos that go with it), so its buttons can be
verified later: a button key is `purpose:action:task_id`, and the task id is a random server-side
record. A click is acted on only if that record exists, was sent to the clicker, is undecided and
still matches the ticket; anything else changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass

from handlers.dialog import Dialog
from handlers.hazard.views import Facts, extension_card, facts, owner_card, plan_card, review_card
from handlers.replies import unknown_card
from handlers.router import Context
from models.audit import record
from models.dialog import Dialog as DialogRow
from models.dialog import close_dialog
from models.hazard import (
    CardPurpose,
    Refused,
    Stale,
    Ticket,
    TicketCard,
    card_as_stored,
    clicked_card,
    decide_card,
    new_card,
    principals,
    ticket_by_id,
    transfer_candidates,
)
from models.org import person
from models.outgoing import CardUpdate, Image, Text

ACTIONS = {
    CardPurpose.SUMMARY: {"submit", "edit", "cancel"},
    CardPurpose.ASSIGN: {"accept", "done", "transfer", "extend"},
    CardPurpose.EXTENSION: {"yes", "no"},
    CardPurpose.REVIEW: {"approve", "reject"},
    CardPurpose.PLAN: {"write"},
}


HANDLED = "该事项已处理，无需再次操作。"


async def guarded(ctx: Context, ticket: Ticket, step: Awaitable[None]) -> bool:
    """Run a transition; a refusal or a stale ticket is answered and changes nothing."""
    try:
        await step
    except Refused as refused:
        await ctx.reply(Text(refused.reason))
        return False
    except Stale:
        await ctx.reply(Text(f"{ticket.label} 的状态已经变化，{HANDLED}"))
        return False
    return True


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
        card = await clicked_card(parts[2], purpose)
    if card is None:
        await unknown_card(ctx)
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


async def _handled_by(card: TicketCard) -> str:
    if card.decided_by:
        who = await person(card.decided_by)
        return f"该事项已由{who.name if who else card.decided_by}处理，无需再次操作。"
    return HANDLED


async def settle(ctx: Context, click: Click, shown: str) -> bool:
    """Record the click as the card's decision and grey it out for everyone who got it."""
    if not await decide_card(click.card, ctx.me.id, click.action, ctx.now):
        await ctx.reply(Text(await _handled_by(await card_as_stored(click.card.task_id))))
        return False
    if ctx.event.response_code:
        await ctx.send(CardUpdate(ctx.event.response_code, f"已由{ctx.me.name}{shown}"))
    return True


async def decided(ctx: Context, click: Click, step: Awaitable[None], shown: str) -> bool:
    """The click's transition (or its rights check) first, then the card's decision; False, with
    the person told why, when either does not happen."""
    return await guarded(ctx, click.ticket, step) and await settle(ctx, click, shown)


# ---------------------------------------------------------------------------------------------
# The cards


MAX_PHOTOS = 9


async def photos(ctx: Context, to: list[str], ticket: Ticket, hashes: list[str]) -> None:
    for digest in hashes[:MAX_PHOTOS]:
        await ctx.send(Image(digest, about=ticket.label), to_users=to)


async def owner_cards(ctx: Context, ticket: Ticket, *, with_photos: bool = True) -> Facts:
    """The owner gets the photos (a new owner; not again for a card sent again) and the card:
    接收 until accepted, 已整改, 转派, 申请延期."""
    f = await facts(ticket, ctx.rules.catalog)
    owner = ticket.owner_id or ""
    card = await new_card(ticket, CardPurpose.ASSIGN, [owner], ctx.now)
    if with_photos:
        await photos(ctx, [owner], ticket, ticket.photos)
    candidates = await transfer_candidates(ticket, ctx.limits.card_options)
    await ctx.send(owner_card(f, card.task_id, ctx.rules.tz, candidates), to_users=[owner])
    return f


async def review_cards(ctx: Context, ticket: Ticket) -> list[str]:
    """The reviewer (or, for the second approval of a 重大 ticket, every principal) gets the
    before and after photos and the 通过 / 驳回 card. Returns who got it."""
    if ticket.first_approval:
        to = [u.id for u in await principals()]
    else:
        to = [ticket.reviewer_id or ""]
    f = await facts(ticket, ctx.rules.catalog)
    card = await new_card(ticket, CardPurpose.REVIEW, to, ctx.now)
    await ctx.send(Text(f"{ticket.number} 整改前照片："), to_users=to)
    await photos(ctx, to, ticket, ticket.photos)
    await ctx.send(Text(f"{ticket.number} 整改后照片："), to_users=to)
    await photos(ctx, to, ticket, ticket.evidence)
    await ctx.send(review_card(f, card.task_id, ctx.rules.tz), to_users=to)
    return to


async def extension_cards(ctx: Context, ticket: Ticket) -> None:
    to = [ticket.reviewer_id or ""]
    f = await facts(ticket, ctx.rules.catalog)
    card = await new_card(ticket, CardPurpose.EXTENSION, to, ctx.now)
    await ctx.send(extension_card(f, card.task_id, ctx.rules.tz), to_users=to)


async def plan_cards(ctx: Context, ticket: Ticket) -> list[str]:
    to = [u.id for u in await principals()]
    f = await facts(ticket, ctx.rules.catalog)
    card = await new_card(ticket, CardPurpose.PLAN, to, ctx.now)
    await photos(ctx, to, ticket, ticket.photos)
    await ctx.send(plan_card(f, card.task_id), to_users=to)
    return to


# ---------------------------------------------------------------------------------------------
# Questions about a filed ticket


class TicketDialog(Dialog[Ticket]):
    """A question about a filed ticket (a 驳回 reason, a date, a name). Cancelling or leaving
    one that a card started sends the card again, so nobody is left without a way to act."""

    @classmethod
    async def load(cls, ctx: Context, row: DialogRow) -> Ticket | None:
        return await ticket_by_id(row.ticket_id)

    @classmethod
    async def resend(cls, ctx: Context, ticket: Ticket) -> None:
        """The card this kind of question comes from."""
        await owner_cards(ctx, ticket, with_photos=False)

    async def cancel(self) -> None:
        await super().cancel()
        if self.data.get("from_card"):
            await self.resend(self.ctx, self.subject)

    @classmethod
    async def expire(cls, ctx: Context, row: DialogRow) -> None:
        await close_dialog(row.user_id)
        ticket = await cls.load(ctx, row)
        what = f"（{ticket.number}）" if ticket else ""
        await ctx.reply(Text(f"刚才的操作{what}长时间没有回复，已结束。如需继续，请重新操作。"))
        if ticket is not None and row.data.get("from_card"):
            await cls.resend(ctx, ticket)
