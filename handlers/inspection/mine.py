"""`巡检`: my rounds today, how far each is, and the checkpoints left in route order."""

from __future__ import annotations

from datetime import timedelta

from handlers.router import Context, Router
from models.inspection.rounds import RoundStatus, rounds_of_day
from models.inspection.sites import checkpoint_names
from models.inspection.visits import reached_in
from models.outgoing import Markdown, Text, fit

router = Router()
WORDS = ("巡检", "我的巡检", "巡检任务")
LISTED = 6          # checkpoints left named per round


@router.text(*WORDS)
async def my_rounds(ctx: Context) -> None:
    local = ctx.local(ctx.now)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    rounds = await rounds_of_day(ctx.me.id, start, start + timedelta(days=1))
    if not rounds:
        await ctx.reply(Text("您今天没有巡检任务。到达巡检点后扫描标签上的二维码，或发送标签上的"
                             "编号（如 A3-01）即可检查。"))
        return
    reached = await reached_in([r.id for r in rounds])
    names = await checkpoint_names({c for r in rounds for c in r.checkpoints})
    lines = [f"**今天的巡检任务（{local:%m月%d日}）**"]
    for r in rounds:
        done = reached[r.id]
        left = [c for c in r.checkpoints if c not in done]
        lines.append(f"> {r.route_name}（{r.frequency.label}，{r.window}）："
                     f"{r.status.label}，已完成{len(done)}/{len(r.checkpoints)}")
        if done:
            lines.append("> 已到达：" + "、".join(
                f"{c} {ctx.local(at):%H:%M}" for c, at in done.items()))
        if left and r.status in (RoundStatus.OPEN, RoundStatus.MISSED):
            shown = "、".join(f"{c} {names.get(c, '')}" for c in left[:LISTED])
            lines.append(f"> 待检查：{shown}" + (f"等{len(left)}个" if len(left) > LISTED else ""))
    lines.append("到达巡检点后扫码，或发送标签上的编号开始检查。")
    await ctx.reply(Markdown(fit(lines, room=ctx.limits.message_bytes - 64)))
