"""The 治理方案 of a 重大 ticket: the principal fills its six fields in chat, and the ticket opens
with the plan's deadline."""

from __future__ import annotations

from typing import Any, ClassVar

from handlers.dialog import Retry, Step
from handlers.hazard.cards import (
    TicketDialog,
    decided,
    guarded,
    open_click,
    owner_cards,
    plan_cards,
)
from handlers.hazard.dates import parse_date
from handlers.hazard.views import when
from handlers.router import Context, Router
from models.catalog import Category
from models.hazard import PLAN_FIELDS, CardPurpose, Ticket, check_planner, set_plan
from models.outgoing import Text

clicks = Router()


def _major_deadline_days(ctx: Context, ticket: Ticket) -> int:
    """The category's time for a 重大 hazard (`major_deadline_days`), offered as the plan's
    default 时限."""
    category = ctx.rules.catalog.get(ticket.category)
    return category.major_deadline_days if category else Category.major_deadline_days


def _field(index: int, key: str, label: str) -> Step:
    """The plan's field `key`: asked with its number; the 时限 must name a date (or 默认)."""

    async def asks(dialog: PlanDialog) -> str:
        days = _major_deadline_days(dialog.ctx, dialog.subject)
        hint = f"需包含完成日期，或回复“默认”：{days}天" if key == "deadline" else ""
        return f"{index}. 请填写{label}。{hint}"

    async def parse(dialog: PlanDialog, text: str) -> str:
        ctx = dialog.ctx
        if key == "deadline" and text == "默认":
            text = f"{_major_deadline_days(ctx, dialog.subject)}天内完成（类别默认时限）"
        if len(text) < 2 or len(text) > ctx.rules.text_max:
            raise Retry(f"请填写{label}（2到{ctx.rules.text_max}字）。")
        if key == "deadline" and parse_date(text, ctx.local(ctx.now)) is None:
            raise Retry("治理时限需要包含完成日期，例如：2026-12-31前完成，或 30天。")
        return text

    return Step(asks, parse)


class PlanDialog(TicketDialog):
    """The six fields of a 治理方案, in order."""

    kind = "plan"
    steps: ClassVar[dict[str, Step]] = {
        key: _field(n, key, label) for n, (key, label) in enumerate(PLAN_FIELDS, 1)}

    @classmethod
    async def resend(cls, ctx: Context, ticket: Ticket) -> None:
        await plan_cards(ctx, ticket)

    async def finish(self) -> None:
        ctx, ticket = self.ctx, self.subject
        plan: dict[str, Any] = {key: self.data[key] for key, _ in PLAN_FIELDS}
        deadline = parse_date(plan["deadline"], ctx.local(ctx.now))
        assert deadline is not None
        if not await guarded(ctx, ticket, set_plan(ticket, ctx.me, plan, deadline, ctx.now)):
            return
        await self.close()
        await owner_cards(ctx, ticket)
        await ctx.reply(Text(f"{ticket.number} 治理方案已确定，整改期限"
                             f"{when(deadline, ctx.rules.tz)}，已通知整改责任人。"))
        await ctx.send(Text(f"您上报的 {ticket.number} 已制定治理方案，进入整改。"),
                       to_users=[ticket.reporter_id])


@clicks.card_action(CardPurpose.PLAN.value)
async def plan_clicked(ctx: Context) -> None:
    click = await open_click(ctx, CardPurpose.PLAN)
    if click is None:
        return
    ticket = click.ticket
    if await decided(ctx, click, check_planner(ticket, ctx.me, ctx.now), "填写治理方案"):
        lead = f"开始制定 {ticket.number} 的治理方案，共{len(PLAN_FIELDS)}项。"
        await PlanDialog.start(ctx, ticket, ticket_id=ticket.id, data={"from_card": True},
                               lead=lead)
