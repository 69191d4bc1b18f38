"""The commander's acknowledgement board: sent at most once an interval as answers arrive, and on
demand with 应急状态."""

from __future__ import annotations

from handlers.emergency.speak import say, send
from handlers.router import Context, Router
from models.emergency import (
    Activation,
    Plan,
    active_responses,
    board,
    calls_waiting,
    commander_board,
    evacuation_map,
    may_activate,
    plans_of,
)
from models.emergency_due import board_later, board_sent
from models.org import area_by_code

router = Router()


async def mine(ctx: Context) -> list[Activation]:
    """The active responses this person may run: their own, or all for managers."""
    return await active_responses(None if may_activate(ctx.me) else ctx.me.id)


@router.text("应急状态")
async def status(ctx: Context) -> None:
    """The board on demand, with the area's map: whoever asks may not have it at hand."""
    active = await mine(ctx)
    if active:
        plans = await plans_of(active)
        for activation in active:
            await send(ctx, await board(activation, plans[activation.plan_id or ""], ctx.now,
                                         ctx.rules.tz), [ctx.me.id])
            drawn = evacuation_map(await area_by_code(activation.area_id))
            if drawn is not None:
                await send(ctx, drawn, [ctx.me.id])
        return
    waiting = await calls_waiting(ctx.me.id)
    await say(ctx, f"您有{waiting}条应急通知尚未确认，请回复“收到”。" if waiting
               else "目前没有进行中的应急响应。")


async def board_soon(ctx: Context, activation: Activation, plan: Plan) -> None:
    """At most one board per interval: now if the last one is old enough, else the scheduler
    sends it when the interval is up."""
    every = ctx.rules.emergency.board_every
    last = activation.board_sent_at
    if last is None or ctx.now - last >= every:
        if await board_sent(activation, ctx.now):
            for message in await commander_board(activation, plan, ctx.now, ctx.rules.tz):
                await send(ctx, message, [activation.commander])
        return
    await board_later(activation, last + every)
