"""Reaching a checkpoint: the platform's scanner (WeCom's menu button `scancode_waitmsg`), the
short code typed (DingTalk, the web chat, a label the camera cannot read), or a photo of the
label decoded on the server. Each is recorded as a visit with its time; the one that counts for
a round opens the checkpoint's checklist, the others are answered with why they do not count."""

from __future__ import annotations

from datetime import timedelta

from handlers.inspection.checklist import start_checklist
from handlers.router import Context, Router
from models.audit import record
from models.inbound import Inbound, InboundKind
from models.inspection.codes import CODE, Refusal, read_payload, signing_key
from models.inspection.rounds import rounds_walked_by
from models.inspection.sites import Checkpoint, checklist_by_code, checkpoint_by_code
from models.inspection.visits import (
    NotCounted,
    Source,
    record_visit,
    visit_done,
    visit_under_way,
)
from models.outgoing import Text

commands = Router()        # answered even in the middle of another question
claims = Router()          # photos and code-shaped text: only when they are a checkpoint's
LOOK_BACK = timedelta(hours=24)      # a round whose grace ended since is named in the answer


def _typed_code(event: Inbound) -> bool:
    return event.kind is InboundKind.TEXT and bool(CODE.fullmatch(event.text.strip().upper()))


@commands.kind(InboundKind.SCAN)
async def scanned(ctx: Context) -> None:
    await _signed(ctx, ctx.event.text, Source.SCAN)


@claims.on(_typed_code)
async def typed(ctx: Context) -> bool | None:
    """A short code such as A3-01. Text of that shape that names no checkpoint goes to the open
    question, if there is one (a date, a part number), else is answered as not found."""
    code = ctx.event.text.strip().upper()
    checkpoint = await checkpoint_by_code(code)
    if checkpoint is None and await ctx.dialog() is not None:
        return False
    await reach(ctx, code, checkpoint, Source.TYPED)
    return None


@claims.kind(InboundKind.IMAGE)
async def photographed(ctx: Context) -> bool | None:
    """A photo from someone on a round, with no question open, may be a label's: it is decoded;
    any other photo is left to the routes after this one (a hazard report)."""
    if (ctx.event.media_lost or not ctx.event.media or await ctx.dialog() is not None
            or not await rounds_walked_by(ctx.me.id, ctx.now, ctx.now)
            or not await ctx.rules.is_image(ctx.event.media)):
        return False
    codes = await ctx.rules.read_codes(ctx.event.media)
    if not codes:
        return False
    await _signed(ctx, codes[0], Source.PHOTO)
    return None


async def _signed(ctx: Context, text: str, source: Source) -> None:
    found = read_payload(await signing_key(), text)
    if found is Refusal.NOT_OURS:
        await ctx.reply(Text("这不是巡检点的二维码。请扫描巡检点标签上的二维码，"
                             "或发送标签上的编号。"))
        return
    if found is Refusal.FORGED:
        await record(at=ctx.now, actor=ctx.me.id, action="inspection.scan.refused",
                     subject_type="checkpoint", subject_id=text[:64],
                     note="signature does not match this plant's key")
        await ctx.reply(Text("该二维码不是本厂签发的巡检点标签，本次不予记录。如标签损坏或被替换，"
                             "请联系安全管理员重新打印。"))
        return
    await reach(ctx, found, await checkpoint_by_code(found), source)


async def reach(ctx: Context, code: str, checkpoint: Checkpoint | None, source: Source) -> None:
    """`code` reached (`checkpoint`, as read for it): recorded, and the checklist started when
    it counts for one of the person's rounds."""
    me, now, tz = ctx.me.id, ctx.now, ctx.rules.tz
    if checkpoint is None or not checkpoint.active:
        await ctx.reply(Text(f"没有找到编号为 {code} 的巡检点，请核对标签上的编号。"))
        return
    where = f"{checkpoint.code} {checkpoint.name}"
    rounds = [r for r in await rounds_walked_by(me, now, now - LOOK_BACK)
              if code in r.checkpoints]
    if not rounds:
        await record_visit(None, code, me, now, source, NotCounted.OFF_ROUTE)
        await ctx.reply(Text(f"已记录您到达{where}（{ctx.local(now):%H:%M}）。该巡检点不在您"
                             "当前的巡检任务中，本次不计入巡检。发送“巡检”查看今天的任务。"))
        return
    open_now = [r for r in rounds if r.in_window(now, tz)]
    if not open_now:
        shown = rounds[-1]
        await record_visit(shown.id, code, me, now, source, NotCounted.OFF_WINDOW)
        await ctx.reply(Text(f"已记录您到达{where}。现在不在“{shown.route_name}”的巡检时段"
                             f"（{shown.window}）内，本次不计入巡检。"))
        return
    done = [(r, await visit_done(r.id, code)) for r in open_now]
    round_ = next((r for r, v in done if v is None), None)
    if round_ is None:
        first, visit = done[0]
        assert visit is not None
        await record_visit(first.id, code, me, now, source, NotCounted.DONE_BEFORE)
        await ctx.reply(Text(f"{where}本轮已于{ctx.local(visit.at):%H:%M}检查完毕，"
                             "无需重复检查。"))
        return
    earlier = await visit_under_way(round_.id, code, me)
    visit = earlier or await record_visit(round_.id, code, me, now, source)
    checklist = await checklist_by_code(checkpoint.checklist_id)
    if checklist is None:
        return
    position = round_.checkpoints.index(code) + 1
    await start_checklist(ctx, visit, checkpoint, list(checklist.item_list()),
                          title=f"{where}·{checklist.title}",
                          lead=f"已到达{where}（{round_.route_name}第{position}/"
                               f"{len(round_.checkpoints)}个点，{ctx.local(now):%H:%M}）。"
                          + ("继续未完成的检查。" if earlier else ""))

