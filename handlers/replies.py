"""Answers every module gives alike: to strangers, to what nobody understood, to a card key we
never issued, to a photo that did not arrive, and to a module the plant has not switched on."""

from __future__ import annotations

from handlers.router import Context
from models.audit import record
from models.outgoing import Priority, Text

NOT_REGISTERED = ("您好，您还没有登记在本厂的安全助手名册中，暂时无法使用。"
                  "请联系安全管理员为您登记。")
UNKNOWN = "没有理解您的意思。发送照片可以上报隐患，发送“帮助”查看使用说明。"
UNKNOWN_WITHOUT_HAZARDS = "没有理解您的意思。发送“帮助”查看使用说明。"
NOT_AVAILABLE = "该功能暂未开通，如需使用请联系安全管理员。"


async def not_registered(ctx: Context) -> None:
    await ctx.reply(Text(NOT_REGISTERED))


async def not_understood(ctx: Context, *, photos_report: bool = True) -> None:
    """`photos_report`: whether a photo would start a report (the hazard module is on)."""
    await ctx.reply(Text(UNKNOWN if photos_report else UNKNOWN_WITHOUT_HAZARDS))


async def not_available(ctx: Context) -> None:
    await ctx.reply(Text(NOT_AVAILABLE))


async def unknown_card(ctx: Context, priority: Priority = Priority.ROUTINE) -> None:
    """A key we never issued (forged, or from another system): recorded, nothing changes."""
    await record(at=ctx.now, actor=ctx.me.id, action="refused", subject_type="card",
                 subject_id=ctx.event.task_id[:64],
                 note=f"unknown key {ctx.event.event_key[:400]}")
    await ctx.send(Text("无法识别这个操作，请使用最新收到的卡片。"), to_users=[ctx.event.user_id],
                   priority=priority)


async def photo_refused(ctx: Context) -> bool:
    """A photo that did not arrive or is not an image gets a clear answer; nothing changes."""
    if ctx.event.media_lost or not ctx.event.media:
        await ctx.reply(Text("照片没有接收成功，请重新发送。"))
        return True
    if not await ctx.rules.is_image(ctx.event.media):
        await ctx.reply(Text("只能接收图片（JPG、PNG），请重新发送照片。"))
        return True
    return False
