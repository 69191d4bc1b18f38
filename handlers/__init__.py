"""What the bot does when something arrives: the whole routing, in one ordered list.

The first route that takes an event answers it, top first:
1. a module's own queued next step (a follow-up), even for someone who has left the roster;
2. strangers get one polite answer;
3. an expired question goes to its dialog;
4. a card click goes to its module's buttons (a key nobody issued is refused);
5. typed commands (帮助, 一键报警, 启动预案, 收到, 我的隐患, a ticket number …) and a
   checkpoint's scan are answered even in the middle of a question;
6. what a module claims among events others take too (a photo of a checkpoint's label), then
   an open question gets the message;
7. what starts a module's work: a photo, a trigger word, a menu key, an owner's 已整改;
8. free text a module recognises (words that name an area or a hazard start a report);
9. anything else: 没有理解.
A module the plant has not switched on has no routes; its words, menu keys and cards are answered
该功能暂未开通 at the moment they would have been taken.
"""

from __future__ import annotations

from collections.abc import Collection

from handlers import emergency, hazard, inspection, qualification, training
from handlers.dialog import Dialogs
from handlers.module import Module
from handlers.replies import not_available, not_registered, not_understood, unknown_card
from handlers.router import Context, Router
from models.inbound import InboundKind
from models.outgoing import Markdown

# Every module, in the order of their routes and their lines in 帮助.
MODULES: dict[str, Module] = {m.name: m for m in (hazard.MODULE, emergency.MODULE,
                                                  qualification.MODULE, training.MODULE,
                                                  inspection.MODULE)}

# Events a person did not address to us, answered by nobody when nothing else takes them.
_SILENT = frozenset({InboundKind.ENTER, InboundKind.UNKNOWN, InboundKind.EXPIRED})


def help_text(modules: Collection[str] = MODULES) -> str:
    lines = [line for name, m in MODULES.items() if name in modules for line in m.help]
    return "\n".join(["**安全助手 使用说明**", *(f"> {line}" for line in lines),
                      "> 任何一步回复“取消”可以放弃，回复“返回”回到上一步；"
                      "发送“帮助”随时查看本说明",
                      "如遇紧急情况，请立即拨打厂内应急电话并报告值班长。"])


HELP = help_text()


def build_router(modules: Collection[str] = MODULES) -> Router:
    """The routing of the bot with the modules named in `modules` switched on."""
    unknown = sorted(set(modules) - set(MODULES))
    if unknown:
        raise ValueError(f"unknown modules: {', '.join(unknown)}")
    on = [m for name, m in MODULES.items() if name in modules]
    off = [m for name, m in MODULES.items() if name not in modules]
    dialogs = Dialogs({d.kind: d for m in on for d in m.dialogs})
    shown = Markdown(help_text(modules))

    async def strangers(ctx: Context) -> bool:
        if ctx.user is not None:
            return False
        if ctx.event.kind not in _SILENT:
            await not_registered(ctx)
        return True

    async def show_help(ctx: Context) -> None:
        await ctx.reply(shown)

    async def understood_nothing(ctx: Context) -> None:
        if ctx.event.kind not in _SILENT:
            await not_understood(ctx, photos_report=hazard.MODULE.name in modules)

    # What a person sent (or their question's expiry); a queued step nobody took is left to
    # the worker, which logs it.
    person = Router()
    person.on(lambda e: True)(strangers)
    person.kind(InboundKind.EXPIRED)(dialogs.expire)
    for m in on:
        person.include(m.clicks)
    person.on(lambda e: any(m.clicks.matches(e) for m in off))(not_available)
    person.kind(InboundKind.CARD_ACTION)(unknown_card)
    person.text("帮助", "help", "?", "？")(show_help)
    for m in on:
        person.include(m.commands)
    person.on(lambda e: any(m.commands.matches(e) for m in off))(not_available)
    for m in on:
        person.include(m.claims)
    person.on(lambda e: True)(dialogs.answer)
    for m in on:
        person.include(m.starts)
    person.on(lambda e: any(m.starts.matches(e) for m in off))(not_available)
    for m in on:
        person.include(m.guesses)
    person.on(lambda e: True)(understood_nothing)

    root = Router()
    for m in on:
        root.include(m.follow_ups)
    root.on(lambda e: e.kind is not InboundKind.FOLLOW_UP)(person.dispatch)
    return root
