"""How the emergency module speaks: everything at emergency priority, ahead of every routine
message and never held for quiet hours; a clicked card greyed out for everyone who got it; a
refusal on the activation's record."""

from __future__ import annotations

from handlers.router import Context
from models.emergency import (
    Activation,
    ActivationStatus,
)
from models.emergency import audit as audit_activation
from models.outgoing import CardUpdate, Outgoing, Priority, Text


async def send(ctx: Context, message: Outgoing, to: list[str]) -> None:
    await ctx.send(message, to_users=to, priority=Priority.EMERGENCY)


async def say(ctx: Context, text: str) -> None:
    await send(ctx, Text(text), [ctx.me.id])


async def refuse(ctx: Context, activation: Activation, reason: str) -> None:
    await audit_activation(activation, ctx.me.id, "refused", ctx.now,
                           from_state=activation.status.value, note=reason)
    await say(ctx, reason)


async def already(ctx: Context, activation: Activation) -> None:
    word = {ActivationStatus.ACTIVE: "已启动", ActivationStatus.CLOSED: "已结束",
            ActivationStatus.DISMISSED: "已取消", ActivationStatus.JOINED: "已并入"}.get(
        activation.status, "已处理")
    await say(ctx, f"该事项{word}，无需再次操作。")


async def grey(ctx: Context, text: str) -> None:
    """Grey out the clicked card for everyone who got it."""
    if ctx.event.response_code:
        await ctx.send(CardUpdate(ctx.event.response_code, text), priority=Priority.EMERGENCY)
