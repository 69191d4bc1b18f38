"""What the bot does when something arrives. The routers are composed here, in one place.

Precedence, top first: a handler's queued next step (a follow-up) goes to its own; strangers get
one polite answer; a card click goes to its card's handler; an emergency command (一键报警,
启动预案, 收到 …) or a command typed in full (帮助, 我的隐患, a ticket number …) is answered even
in the middle of a question; an open question gets the message; otherwise a photo, a trigger
word or a hazard's words start a report.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from handlers import cards, commands, emergency, report, workflow
from handlers.router import Context, Router
from models.dialog import Dialog
from models.inbound import InboundKind

log = logging.getLogger(__name__)

# Events a person did not address to us, answered by nobody when nothing else takes them.
_SILENT = frozenset({InboundKind.ENTER, InboundKind.UNKNOWN, InboundKind.EXPIRED})

DIALOGS: dict[str, Callable[[Context, Dialog], Awaitable[None]]] = {
    report.KIND: report.on_dialog,
    emergency.KIND: emergency.on_dialog,
    **{kind: workflow.on_dialog for kind in workflow.DIALOG_KINDS},
}


async def expired(ctx: Context) -> None:
    """A question went unanswered: put it aside, unless the person answered meanwhile."""
    dialog = await ctx.dialog()
    if dialog is None or dialog.asked_at.isoformat() != ctx.event.event_key:
        return
    if dialog.kind == report.KIND:
        await report.put_aside(ctx, dialog)
    elif dialog.kind == emergency.KIND:
        await emergency.put_aside(ctx, dialog)
    else:
        await workflow.put_aside(ctx, dialog)


def build_router() -> Router:
    router = Router()
    router.include(report.router)
    router.include(workflow.router)
    router.include(commands.clicks)
    router.include(emergency.clicks)
    return router


async def handle(router: Router, ctx: Context) -> None:
    event = ctx.event
    if event.kind is InboundKind.FOLLOW_UP:
        # The bot's own step: it runs even if the person who started it has left the roster.
        if not await router.dispatch(ctx):
            log.error("no handler for a queued step; it is dropped",
                      extra={"event_key": event.event_key, "inbox_id": ctx.event_id})
        return
    if ctx.user is None:
        if event.kind not in _SILENT:
            await commands.not_registered(ctx)
        return
    if event.kind is InboundKind.EXPIRED:
        await expired(ctx)
        return
    if event.kind is not InboundKind.CARD_ACTION:
        if await emergency.router.dispatch(ctx) or await commands.router.dispatch(ctx):
            return
        dialog = await ctx.dialog()
        if dialog is not None:
            await DIALOGS[dialog.kind](ctx, dialog)
            return
    if await router.dispatch(ctx):
        return
    if event.kind is InboundKind.CARD_ACTION:
        await cards.unknown(ctx)
    elif event.kind is InboundKind.TEXT and await report.names_a_hazard(ctx):
        await report.start_by_text(ctx)
    elif event.kind not in _SILENT:
        await commands.not_understood(ctx)
