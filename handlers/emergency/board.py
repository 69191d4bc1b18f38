"""The commander's acknowledgement board: sent at most once an interval as answers arrive, and on
demand with 应急状态."""

from __future__ import annotations

from handlers.emergency.speak import say, send
from handlers.router import Context, Router
from models.emergency import (
    Activation,
    ActivationStatus,
    Plan,
    Responder,
    board,
    may_activate,
)

router = Router()

async def mine(ctx: Context) -> list[Activation]:
    """The active responses this person may run: their own, or all for managers."""
    active = Activation.filter(status=ActivationStatus.ACTIVE).order_by("id")
    if may_activate(ctx.me):
        return list(await active)
    return list(await active.filter(commander=ctx.me.id))

@router.text("应急状态")
async def status(ctx: Context) -> None:
    active = await mine(ctx)
    if active:
        plans = {p.code: p for p in await Plan.filter(code__in=[a.plan_id for a in active])}
        for activation in active:
            await send(ctx, await board(activation, plans[activation.plan_id or ""], ctx.now,
                                         ctx.rules.tz), [ctx.me.id])
        return
    waiting = await Responder.filter(user_id=ctx.me.id, answer="",
                                     activation__status=ActivationStatus.ACTIVE).count()
    await say(ctx, f"您有{waiting}条应急通知尚未确认，请回复“收到”。" if waiting
               else "目前没有进行中的应急响应。")

async def board_soon(ctx: Context, activation: Activation, plan: Plan) -> None:
    """At most one board per interval: now if the last one is old enough, else the scheduler
    sends it when the interval is up."""
    every = ctx.rules.emergency.board_every
    last = activation.board_sent_at
    if last is None or ctx.now - last >= every:
        sent = await Activation.filter(id=activation.id, board_sent_at=last).update(
            board_sent_at=ctx.now, board_due_at=None)
        if sent:
            await send(ctx, await board(activation, plan, ctx.now, ctx.rules.tz),
                        [activation.commander])
        return
    await Activation.filter(id=activation.id, board_due_at__isnull=True).update(
        board_due_at=last + every)


# ---------------------------------------------------------------------------------------------
# 结束预案, 应急状态, 已上报
