"""The reviewer's side: 通过 closes a ticket (a 重大 one goes on to the principals' approval; a
复发 one first asks whether a 管理缺陷 let it come back), 驳回 asks for the reason and reopens
it, and the answer to an owner's request for more time."""

from __future__ import annotations

import re

from handlers.dialog import Retry, Step
from handlers.hazard.cards import (
    Click,
    TicketDialog,
    decided,
    guarded,
    open_click,
    owner_cards,
    review_cards,
)
from handlers.hazard.views import facts, when
from handlers.router import Context, Router
from models.hazard import (
    MANAGEMENT_CAUSE,
    OTHER_CAUSE,
    CardPurpose,
    Status,
    Ticket,
    approve,
    check_reviewer,
    decide_extension,
    needs_cause,
    reject,
)
from models.outgoing import Text

clicks = Router()
CAUSE = re.compile(r"^(是|否|不是)[，,。.;；:：\s]*(.*)$", re.S)


class RejectDialog(TicketDialog):
    """The reason for a 驳回, passed on to the owner."""

    kind = "reject"

    async def _ask_reason(self) -> str:
        return f"请回复 {self.subject.number} 的驳回原因，将转告整改责任人。"

    async def _reason(self, text: str) -> None:
        ctx, ticket = self.ctx, self.subject
        if len(text) < 2 or len(text) > ctx.rules.text_max:
            raise Retry("驳回需要说明原因，请用一句话说明需要怎样重新整改。")
        rejected = await guarded(ctx, ticket, reject(ticket, ctx.me, text, ctx.now))
        await self.close()
        if not rejected:
            return
        await ctx.send(Text(f"{ticket.number} 复查未通过，原因：{text}。请重新整改，完成后点下面"
                            "卡片上的“已整改”，或发送照片并回复“已整改”，期限"
                            f"{when(ticket.deadline, ctx.rules.tz)}。"),
                       to_users=[ticket.owner_id or ""])
        await owner_cards(ctx, ticket, with_photos=False)   # the reopened ticket's buttons
        await ctx.reply(Text(f"已驳回 {ticket.number}，原因已转告整改责任人。"))

    reason = Step(_ask_reason, _reason)

    @classmethod
    async def resend(cls, ctx: Context, ticket: Ticket) -> None:
        await review_cards(ctx, ticket)


class CauseDialog(TicketDialog):
    """Before a 复发 ticket's 通过: did a 管理缺陷 let it come back? The answer is kept with
    the ticket, then it is approved."""

    kind = "recurrence_cause"

    async def _ask_cause(self) -> str:
        t = self.subject
        return (f"{t.number} 为复发隐患（与已闭环的{'、'.join(t.recurs or [])}相似）。"
                "通过前请说明：复发原因是否属于管理缺陷？请回复“是”或“否”，可附一句说明，"
                "例如“是，巡检制度未落实”。")

    async def _cause(self, text: str) -> None:
        ctx, ticket = self.ctx, self.subject
        found = CAUSE.match(text.strip())
        if found is None or len(text) > ctx.rules.text_max:
            raise Retry("请回复“是”（属于管理缺陷）或“否”（不属于），可附一句说明。")
        cause = MANAGEMENT_CAUSE if found.group(1) == "是" else OTHER_CAUSE
        approved = await guarded(ctx, ticket, approve(ticket, ctx.me, ctx.now, cause,
                                                      found.group(2).strip()))
        await self.close()
        if approved:
            await _approved(ctx, ticket)

    cause = Step(_ask_cause, _cause)

    @classmethod
    async def resend(cls, ctx: Context, ticket: Ticket) -> None:
        await review_cards(ctx, ticket)


@clicks.card_action(CardPurpose.REVIEW.value)
async def review_clicked(ctx: Context) -> None:
    click = await open_click(ctx, CardPurpose.REVIEW)
    if click is None:
        return
    ticket = click.ticket
    if click.action == "approve":
        await _approve(ctx, click)
        return
    if await decided(ctx, click, check_reviewer(ticket, ctx.me, "驳回", ctx.now), "驳回"):
        await RejectDialog.start(ctx, ticket, ticket_id=ticket.id, data={"from_card": True})


async def _approve(ctx: Context, click: Click) -> None:
    ticket = click.ticket
    if needs_cause(ticket):
        if await decided(ctx, click, check_reviewer(ticket, ctx.me, "通过", ctx.now), "通过"):
            await CauseDialog.start(ctx, ticket, ticket_id=ticket.id, data={"from_card": True})
        return
    if await decided(ctx, click, approve(ticket, ctx.me, ctx.now), "通过"):
        await _approved(ctx, ticket)


async def _approved(ctx: Context, ticket: Ticket) -> None:
    """Closed, or on to the principals for a 重大 one: everyone concerned hears."""
    if ticket.status is not Status.CLOSED:
        await review_cards(ctx, ticket)
        await ctx.reply(Text(f"{ticket.number} 复查通过，已提交主要负责人审批。"))
        return
    f = await facts(ticket, ctx.rules.catalog)
    await ctx.reply(Text(f"{ticket.number} 复查通过，已闭环。"))
    await ctx.send(Text(f"{ticket.number}（{f.title}）复查通过，已闭环。感谢！"),
                   to_users=[ticket.owner_id or "", ticket.reporter_id])


@clicks.card_action(CardPurpose.EXTENSION.value)
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
