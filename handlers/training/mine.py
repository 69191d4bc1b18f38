"""`我的培训`: the courses due and under way, what was done this year, and the hours and credit
against the post's yearly numbers."""

from __future__ import annotations

from datetime import date

from handlers.router import Context, Router
from models.outgoing import Markdown, fit
from models.training.enrolments import Reason
from models.training.learning import Phase
from models.training.ledger import MyYear, my_year

router = Router()
LISTED = 8       # records shown; the ledger export has them all


@router.text("我的培训", "培训")
async def mine(ctx: Context) -> None:
    today = ctx.local(ctx.now).date()
    year = await my_year(ctx.me.id, today.year)
    need = ctx.rules.qualification.hours_for(year.post, ctx.me.roles)
    first_year = year.hired_on is not None and (today - year.hired_on).days < 365
    hours_need = need.prejob if first_year else need.yearly
    credit_need = ctx.rules.training.credit_target(year.post)
    lines = [f"**我的培训 · {ctx.me.name}（{today.year}年）**",
             f"> 学时：{year.hours:g}/{hours_need:g}（{'岗前培训' if first_year else '年度'}要求）"
             f"　学分：{year.credit:g}/{credit_need:g}"]
    lines += _due_lines(year, today)
    lines.append(f"**本年已完成（{sum(1 for r in year.records if r.passed)}）**")
    lines += [f"> {r.on:%m-%d} {r.course} {r.hours:g}学时"
              + (f" {r.credit:g}学分" if r.credit else "")
              + (f" {r.score:g}分" if r.score is not None else "")
              + ("" if r.passed else " 不合格") + ("（线上）" if r.source == "chat" else "")
              for r in year.records[-LISTED:][::-1]]
    lines += [f"> 实操抽查 {year.titles.get(p.course, p.course)}：{p.status.label}"
              + (f"（{p.note}）" if p.note else "") for p in year.practicals[-3:][::-1]]
    lines.append("发送“学习”开始或继续学习。")
    await ctx.reply(Markdown(fit(lines, room=ctx.limits.message_bytes)))


def _due_lines(year: MyYear, today: date) -> list[str]:
    lines = [f"**待完成（{len(year.due)}）**"] if year.due else ["**待完成**：无"]
    for e in year.due:
        title = year.titles.get(e.course, e.course)
        when = ""
        if e.due_on is not None:
            late = (today - e.due_on).days
            when = (f" 已逾期{late}天" if late > 0 else f" 截止{e.due_on:%m月%d日}")
        p = year.progress.get(e.course)
        state = ("" if p is None or p.phase is Phase.DONE
                 else f" · 进行中：第{p.level + 1}关" + ("测验" if p.phase is Phase.QUIZ else ""))
        lines.append(f"> 《{title}》{Reason(e.reason).label}{when}{state}")
    return lines
