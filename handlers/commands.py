"""Commands anyone can type, and the answers for messages nothing else takes."""

from __future__ import annotations

from handlers.router import Context, Router
from models.messaging import InboundKind, Markdown, Text

router = Router()

HELP = """**安全助手 使用说明**
> 发送 **帮助**：查看本说明
> 发送照片并说明位置和情况：上报隐患（即将开放）
> 发送 **我的隐患**：查看与您有关的隐患（即将开放）
如遇紧急情况，请立即拨打厂内应急电话并报告值班长。"""

NOT_REGISTERED = ("您好，您还没有登记在本厂的安全助手名册中，暂时无法使用。"
                  "请联系安全管理员为您登记。")
NOT_YET = "收到。该功能即将开放，发送“帮助”可查看目前能做什么。"


@router.text("帮助", "help", "?", "？")
async def show_help(ctx: Context) -> None:
    await ctx.reply(Markdown(HELP))


@router.kind(InboundKind.TEXT, InboundKind.IMAGE, InboundKind.VOICE, InboundKind.LOCATION,
             InboundKind.MENU)
async def not_yet(ctx: Context) -> None:
    await ctx.reply(Text(NOT_YET))


async def not_registered(ctx: Context) -> None:
    await ctx.reply(Text(NOT_REGISTERED))
