"""What the bot does when something arrives. The routers are composed here, in one place."""

from __future__ import annotations

from handlers import commands
from handlers.router import Context, Router
from models.messaging import InboundKind

# Events a person did not address to us, answered by nobody when they come from a stranger.
_SILENT = frozenset({InboundKind.ENTER, InboundKind.UNKNOWN})


def build_router() -> Router:
    router = Router()
    router.include(commands.router)
    return router


async def handle(router: Router, ctx: Context) -> None:
    """Strangers get one polite answer; everyone else is routed."""
    if ctx.user is None:
        if ctx.event.kind not in _SILENT:
            await commands.not_registered(ctx)
        return
    await router.dispatch(ctx)
