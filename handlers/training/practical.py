"""Practical checks (实操抽查) on site: the supervisor drawn presses 合格 or 不合格 on the card,
then sends a photo of the check and a few words. 不合格 sends the person back to the course."""

from __future__ import annotations

from datetime import timedelta

from handlers.dialog import Dialog, PhotoStep, Retry, Step
from handlers.router import Context
from models.dialog import Dialog as DialogRow
from models.org import Role, user_names
from models.outgoing import CardUpdate, Text
from models.training.courses import course_by_code
from models.training.learning import conclude_practical
from models.training.practical import PracticalCheck, PracticalStatus, practical_by_id

NOTE_CHARS = 200


async def practical_clicked(ctx: Context, check: PracticalCheck, passed: bool) -> None:
    if ctx.me.id != check.checker and not ctx.me.has_role(Role.SAFETY_MANAGER):
        await ctx.reply(Text("该实操抽查由被抽查人员的上级或安全管理员记录。"))
        return
    if check.status is not PracticalStatus.ASKED:
        await ctx.reply(Text(f"该实操抽查已记录为“{check.status.label}”。"))
        return
    if ctx.event.response_code:
        await ctx.send(CardUpdate(ctx.event.response_code,
                                  f"已选择{'合格' if passed else '不合格'}，请补充照片和说明"))
    names = await user_names([check.person_id])
    await PracticalDialog.start(ctx, check, data={"check": check.id, "passed": passed},
                                lead=f"记录{names.get(check.person_id, '')}的实操抽查结果："
                                     f"{'合格' if passed else '不合格'}。")


class PracticalDialog(Dialog[PracticalCheck]):
    """The photo of the check, then a note; then it is recorded."""

    kind = "practical"
    back_allowed = True

    async def _ask_photo(self) -> str:
        return "1/2 请发送现场实操的照片。"

    async def _ask_note(self) -> str:
        return ("2/2 请简要说明实操情况（如：动火前气体检测操作规范）。"
                if self.data["passed"] else "2/2 请说明不合格之处，将告知本人。")

    async def _note(self, text: str) -> str:
        if len(text) > NOTE_CHARS:
            raise Retry(f"说明请控制在{NOTE_CHARS}字以内。")
        return text

    picture = PhotoStep(_ask_photo, "请发送现场实操的照片，不是文字。")
    note = Step(_ask_note, _note)

    @classmethod
    async def load(cls, ctx: Context, row: DialogRow) -> PracticalCheck | None:
        return await practical_by_id(int(row.data.get("check", 0)))

    async def finish(self) -> None:
        ctx, check, passed = self.ctx, self.subject, bool(self.data["passed"])
        await self.close()
        spec = await course_by_code(check.course)
        rules = ctx.rules.training
        due_on = ctx.local(ctx.now).date() + timedelta(days=rules.retrain_days)
        if spec is None or not await conclude_practical(
                check, passed, self.data["picture"], self.data["note"], ctx.me.id, spec,
                due_on, ctx.now, rules.remind_days, rules.escalate_days):
            await self.say(Text("该实操抽查已由他人记录，本次未重复记录。"))
            return
        names = await user_names([check.person_id])
        who = names.get(check.person_id, check.person_id)
        if passed:
            await self.say(Text(f"已记录：{who}《{spec.title}》实操抽查合格，已记入其培训档案。"))
            await ctx.send(Text(f"您的《{spec.title}》实操抽查合格，已记入培训档案。"),
                           to_users=[check.person_id])
            return
        await self.say(Text(f"已记录：{who}《{spec.title}》实操抽查不合格。已安排其重新学习，"
                            f"截止{due_on:%m月%d日}。"))
        await ctx.send(Text(f"您的《{spec.title}》实操抽查不合格：{self.data['note']}。请在"
                            f"{due_on:%m月%d日}前重新学习并通过该课程，发送“学习”开始。"),
                       to_users=[check.person_id])
