"""Answers for what cannot be done, worded once: a refused or stale transition, a photo that did
not arrive or is no image. Each leaves everything as it was."""

from __future__ import annotations

from collections.abc import Awaitable

from handlers.router import Context
from models.hazard import Refused, Stale, Ticket
from models.outgoing import Text

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


async def photo_refused(ctx: Context) -> bool:
    """A photo that did not arrive or is not an image gets a clear answer; nothing changes."""
    if ctx.event.media_lost or not ctx.event.media:
        await ctx.reply(Text("照片没有接收成功，请重新发送。"))
        return True
    if not await ctx.rules.is_image(ctx.event.media):
        await ctx.reply(Text("只能接收图片（JPG、PNG），请重新发送照片。"))
        return True
    return False
