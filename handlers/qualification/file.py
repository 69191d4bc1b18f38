"""一人一档 in chat: `我的档案` for oneself; `档案 张三` for the people up their supervisor chain,
safety managers and principals (anyone else is refused, and the refusal recorded)."""

from __future__ import annotations

from datetime import date, tzinfo

from handlers.router import Context, Router
from handlers.words import after, person_named, starts_with, typed
from models.audit import record
from models.outgoing import Markdown, Text, fit
from models.people.file import PersonFile, may_read_file, person_file
from models.people.rules import QualificationRules

router = Router()
OTHERS = starts_with("档案", "查看档案")
LISTED = 5       # training records and checks shown; the xlsx export has them all


@router.text("我的档案", "一人一档")
async def mine(ctx: Context) -> None:
    await _show(ctx, await person_file(ctx.me, ctx.local(ctx.now).date()))


@router.on(typed(OTHERS))
async def someone(ctx: Context) -> None:
    names = after(ctx, OTHERS)
    if len(names) != 1:
        await ctx.reply(Text("请发送“档案 姓名”，例如：档案 张三。"
                             "查看自己的档案请发送“我的档案”。"))
        return
    person = await person_named(ctx, names[0])
    if person is None:
        return
    if not await may_read_file(ctx.me, person):
        await record(at=ctx.now, actor=ctx.me.id, action="refused", subject_type="person_file",
                     subject_id=person.id, note="档案: not their supervisor or a manager")
        await ctx.reply(Text("个人档案仅本人、其上级、安全管理员和主要负责人可以查看。"))
        return
    await _show(ctx, await person_file(person, ctx.local(ctx.now).date()))


async def _show(ctx: Context, file: PersonFile) -> None:
    today = ctx.local(ctx.now).date()
    await ctx.reply(Markdown(fit(file_lines(file, today, ctx.rules.qualification, ctx.rules.tz),
                                 room=ctx.limits.message_bytes)))


def file_lines(f: PersonFile, today: date, rules: QualificationRules, tz: tzinfo
               ) -> list[str]:
    p, person = f.profile, f.person
    lines = [f"**一人一档 · {person.name}（{person.id}）**",
             f"> 部门：{f.department or '—'}　岗位：{p.post or '—'}",
             f"> 入职：{_day(p.hired_on)}　现岗位起：{_day(p.post_since)}"]
    if f.contractor is not None:
        admission = f.admission
        state = ("未办理准入" if admission is None else admission.status.label
                 + (f"，至{end:%Y-%m-%d}" if (end := admission.ends(f.contractor)) else ""))
        lines.append(f"> 承包商：{f.contractor.name}（准入：{state}）")
    status = [s for s in (f"停岗中：{p.suspended}" if p.suspended else "",
                          f"黑名单：{p.blacklisted}" if p.blacklisted else "") if s]
    if status:
        lines.append(f"> 状态：{'；'.join(status)}")
    lines.append(f"**证书（{len(f.certificates)}）**")
    for c in f.certificates:
        kind = rules.certificates.get(c.type_code)
        problem = c.problem(today)
        due = ("" if problem else f"，{'复审' if c.due_is_review else '到期'}日{c.due_on:%Y-%m-%d}"
               + ("，即将到期" if (c.due_on - today).days <= 60 else ""))
        lines.append(f"> {kind.name if kind else c.type_code} {c.number}："
                     f"{problem or '有效'}{due}")
    need = rules.hours_for(p.post, person.roles)
    lines.append(f"**培训**（近12个月{f.hours_12_months:g}学时，要求每年{need.yearly:g}学时）")
    lines += [f"> {t.on:%Y-%m-%d} {t.course} {t.hours:g}学时"
              + (f" {t.credit:g}学分" if t.credit else "")
              + (f" {t.score:g}分" if t.score is not None else "")
              + (" 合格" if t.passed else " 不合格") for t in f.training[-LISTED:][::-1]]
    passed = sum(1 for r in f.checks if r.data.get("ok"))
    lines.append(f"**开工校验**：通过{passed}次，未通过{len(f.checks) - passed}次")
    for r in f.checks[-LISTED:][::-1]:
        lines.append(f"> {r.at.astimezone(tz):%Y-%m-%d %H:%M} {r.data.get('work_type', '')} "
                     + ("通过" if r.data.get("ok") else
                        "未通过：" + "；".join(r.data.get("reasons", []))))
    lines.append(f"**违章**：{len(f.violations)}次")
    lines += [f"> {r.at.astimezone(tz):%Y-%m-%d} {r.data.get('what', '')}"
              for r in f.violations[-LISTED:][::-1]]
    lines.append(f"**上报隐患**：{f.hazards_reported}条，已闭环{f.hazards_closed}条")
    return lines


def _day(day: date | None) -> str:
    return f"{day:%Y-%m-%d}" if day else "—"
