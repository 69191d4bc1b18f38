"""Messages about a ticket that more than one handler sends: the cards that move it along and the
photos that go with them. Each card is recorded first, so its buttons can be verified later."""

from __future__ import annotations

from tortoise.expressions import Subquery

from handlers.router import Context
from handlers.views import (
    Facts,
    extension_card,
    facts,
    owner_card,
    plan_card,
    review_card,
)
from models.hazard import CardPurpose, Ticket, new_card, principals
from models.org import User, every_area
from models.outgoing import Image, Text

MAX_PHOTOS = 9
CHOICES = 10          # a WeCom card's drop-down holds at most 10 options


async def photos(ctx: Context, to: list[str], hashes: list[str]) -> None:
    for digest in hashes[:MAX_PHOTOS]:
        await ctx.send(Image(digest), to_users=to)


async def owner_cards(ctx: Context, ticket: Ticket, *, with_photos: bool = True) -> Facts:
    """The owner gets the photos (a new owner; not again for a card sent again) and the card:
    接收 until accepted, 已整改, 转派, 申请延期."""
    f = await facts(ticket, ctx.rules.catalog)
    owner = ticket.owner_id or ""
    card = await new_card(ticket, CardPurpose.ASSIGN, [owner], ctx.now)
    if with_photos:
        await photos(ctx, [owner], ticket.photos)
    await ctx.send(owner_card(f, card.task_id, ctx.rules.tz, await _transfer_candidates(ticket)),
                   to_users=[owner])
    return f


async def _transfer_candidates(ticket: Ticket) -> list[User]:
    """People a ticket is usually passed to: the owner's colleagues, then other areas' owners.
    Small queries, whatever the size of the roster: colleagues by the (department, id) index,
    area owners by key from the list of areas."""
    owner = ticket.owner_id or ""
    colleagues = await User.filter(
        active=True, department_id=Subquery(User.filter(id=owner).values("department_id")),
    ).exclude(id=owner).order_by("id").limit(CHOICES)
    area_owners = {a.owner_id for a in await every_area()} - {None, ticket.owner_id}
    others = await User.filter(active=True, id__in=sorted(area_owners)).order_by("id").limit(
        CHOICES) if area_owners else []
    picked = {u.id: u for u in [*colleagues, *others]}
    return list(picked.values())[:CHOICES]


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
    await photos(ctx, to, ticket.photos)
    await ctx.send(Text(f"{ticket.number} 整改后照片："), to_users=to)
    await photos(ctx, to, ticket.evidence)
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
    await photos(ctx, to, ticket.photos)
    await ctx.send(plan_card(f, card.task_id), to_users=to)
    return to
