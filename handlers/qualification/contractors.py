"""Contractors (承包商准入) in chat. A safety manager adds a company (`添加承包商`) and its workers
who have no chat account (`登记承包商人员`); a team lead or safety manager asks for a worker's
admission (`申请准入 赵刚 动火作业`): once the entry training is passed and the certificates of
the work are valid, the safety managers get the approval card, 准入 / 不准入 (with a reason).
Admission ends with the contract."""

from __future__ import annotations

from handlers.dialog import Dialog, Retry, Step
from handlers.router import Context, Router
from handlers.words import (
    after,
    managers_only,
    parse_day,
    person_named,
    starts_with,
    typed,
)
from models.dialog import Dialog as DialogRow
from models.org import Role, people_with, user_names
from models.outgoing import Button, Card, Text
from models.people.checks import admission_gaps
from models.people.profiles import (
    Admission,
    AdmissionStatus,
    add_contractor,
    add_contractor_worker,
    admission_by_id,
    ask_admission,
    contractor_named,
    decide_admission,
    profile_of,
)

router = Router()
ADD = starts_with("添加承包商")
WORKER = starts_with("登记承包商人员")
ASK = starts_with("申请准入")


@router.on(typed(ADD))
async def add(ctx: Context) -> None:
    """添加承包商 名称 负责人 电话 合同截止日期."""
    if not await managers_only(ctx, "添加承包商"):
        return
    words = after(ctx, ADD)
    end = parse_day(words[3]) if len(words) == 4 else None
    if end is None:
        await ctx.reply(Text("请发送“添加承包商 名称 负责人 电话 合同截止日期”，例如：添加承包商 "
                             "华安机电安装有限公司 钱进 13900000021 2027-06-30"))
        return
    if await contractor_named(words[0]) is not None:
        await ctx.reply(Text(f"承包商名录中已有“{words[0]}”。"))
        return
    company = await add_contractor(words[0], words[1], words[2], end, ctx.me.id, ctx.now)
    await ctx.reply(Text(f"已添加承包商{company.name}，合同至{end:%Y-%m-%d}。请发送“登记资质 "
                         f"{company.name}”登记营业执照和安全生产许可证。"))


@router.on(typed(WORKER))
async def add_worker(ctx: Context) -> None:
    """登记承包商人员 姓名 承包商 [岗位]: the sender becomes the team lead who names them."""
    if not await managers_only(ctx, "登记承包商人员"):
        return
    words = after(ctx, WORKER)
    company = await contractor_named(words[1]) if len(words) in (2, 3) else None
    if company is None:
        await ctx.reply(Text("请发送“登记承包商人员 姓名 承包商名称 岗位”，例如：登记承包商人员 "
                             "赵刚 华安机电安装有限公司 焊工"))
        return
    post = words[2] if len(words) == 3 else ""
    person = await add_contractor_worker(words[0], company, post, ctx.me.id, ctx.me.id,
                                         ctx.now)
    await ctx.reply(Text(f"已登记{company.name}人员{person.name}（编号 {person.id}）。"
                         f"请发送“登记证书 {person.name}”登记其证书，入厂培训考核合格后发送"
                         f"“申请准入 {person.name}”。"))


@router.on(typed(ASK))
async def ask(ctx: Context) -> None:
    """申请准入 姓名 [作业类型 …]."""
    words = after(ctx, ASK)
    rules = ctx.rules.qualification
    if not words:
        await ctx.reply(Text("请发送“申请准入 姓名 作业类型”，例如：申请准入 赵刚 动火作业。"))
        return
    person = await person_named(ctx, words[0])
    if person is None:
        return
    work = [rules.work_type(w) for w in words[1:]]
    if None in work:
        unknown = [w for w in words[1:] if rules.work_type(w) is None]
        await ctx.reply(Text(f"没有这种作业类型：{'、'.join(unknown)}。"))
        return
    profile = await profile_of(person.id)
    company = (await contractor_named(profile.contractor_id) if profile.contractor_id
               else None)
    if company is None:
        await ctx.reply(Text(f"{person.name}不是承包商人员，无需办理准入。"))
        return
    kinds = [w for w in work if w is not None]
    gaps = await admission_gaps(person, company, kinds, rules, ctx.local(ctx.now).date())
    if gaps:
        await ctx.reply(Text(f"{person.name}暂不能申请准入：{'；'.join(gaps)}。"))
        return
    to = await people_with(Role.SAFETY_MANAGER)
    if not to:
        await ctx.reply(Text("名册中没有安全管理员，无法审批准入。"))
        return
    admission = await ask_admission(person.id, company, [w.name for w in kinds], ctx.me.id,
                                    ctx.now)
    until = f"{company.contract_end:%Y-%m-%d}" if company.contract_end else "未定"
    await ctx.send(Card(
        task_id=f"zr-{admission.id}", title="承包商人员准入审批",
        description=f"{company.name} {person.name}",
        fields=(("人员", f"{person.name}（{company.name}）"),
                ("作业", "、".join(w.name for w in kinds) or "入厂"),
                ("入厂培训", "考核合格"), ("证书", "有效" if kinds else "—"),
                ("准入至", until), ("申请人", ctx.me.name)),
        body="入厂安全教育考核合格，作业所需证书有效。请审批。",
        buttons=(Button("准入", _key(admission, "yes"), 1),
                 Button("不准入", _key(admission, "no"), 2))), to_users=to)
    await ctx.reply(Text(f"已提交{person.name}的准入申请，安全管理员审批后通知您。"))


def _key(admission: Admission, answer: str) -> str:
    return f"qual:admit:{admission.id}:{admission.token}:{answer}"


async def admission_clicked(ctx: Context, admission: Admission, admit: bool) -> None:
    """准入 decides at once; 不准入 asks for the reason first."""
    if not ctx.me.has_role(Role.SAFETY_MANAGER):
        await ctx.reply(Text("准入由安全管理员审批。"))
        return
    if admission.status is not AdmissionStatus.ASKED:
        await ctx.reply(Text(f"该准入申请已处理（{admission.status.label}），无需再次操作。"))
        return
    if admit:
        await _decide(ctx, admission, True, "")
        return
    await RefusalDialog.start(ctx, admission.id, data={"admission": admission.id})


async def _decide(ctx: Context, admission: Admission, admit: bool, reason: str) -> None:
    if not await decide_admission(admission, admit, ctx.me.id, reason, ctx.now):
        await ctx.reply(Text("该准入申请已由他人处理，无需再次操作。"))
        return
    name = (await user_names([admission.person_id])).get(admission.person_id, "")
    until = f"，有效期至{admission.until:%Y-%m-%d}" if admission.until else ""
    words = (f"{name}已准入{until}。" if admit else f"{name}不准入：{reason}。")
    await ctx.reply(Text(f"已记录：{words}"))
    if admission.asked_by != ctx.me.id:
        await ctx.send(Text(f"【准入结果】{words}"), to_users=[admission.asked_by])


class RefusalDialog(Dialog[int]):
    """不准入: the reason, then the decision."""

    kind = "admission_no"

    async def _reason(self, text: str) -> str:
        if not 2 <= len(text) <= 200:
            raise Retry("请用一句话说明不准入的原因（200字以内）。")
        return text

    reason = Step("请回复不准入的原因：", _reason)

    @classmethod
    async def load(cls, ctx: Context, row: DialogRow) -> int | None:
        admission = await admission_by_id(row.data.get("admission"))
        return admission.id if admission is not None else None

    async def finish(self) -> None:
        await self.close()
        admission = await admission_by_id(self.subject)
        if admission is None or admission.status is not AdmissionStatus.ASKED:
            await self.say(Text("该准入申请已由他人处理，无需再次操作。"))
            return
        await _decide(self.ctx, admission, False, self.data["reason"])
