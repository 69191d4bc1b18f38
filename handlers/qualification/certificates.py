"""`登记证书 张三` (a person's certificate) and `登记资质 华安机电安装有限公司` (a contractor's
document): a safety manager answers the bot's questions — the type, the number, the issue date,
the expiry (the type's rule offered), and a photo of the certificate — and it is registered, or
brought up to date when the same type and number are there already (a review, a renewal)."""

from __future__ import annotations

from datetime import date, timedelta

from handlers.dialog import Dialog, PhotoStep, Reask, Retry, Step
from handlers.router import Context, Router
from handlers.words import (
    after,
    managers_only,
    parse_day,
    people_named,
    starts_with,
    typed,
)
from models.dialog import Dialog as DialogRow
from models.outgoing import Text
from models.people.certificates import (
    CertificateError,
    HolderKind,
    NewCertificate,
    default_dates,
    register,
    taken_numbers,
)
from models.people.profiles import contractor_named
from models.people.rules import CertificateType

router = Router()
PERSON = starts_with("登记证书")
CONTRACTOR = starts_with("登记资质")
DEFAULT_WORDS = ("默认", "按规定", "是", "好")


@router.on(typed(PERSON))
async def for_person(ctx: Context) -> None:
    if not await managers_only(ctx, "证书登记"):
        return
    names = after(ctx, PERSON)
    people, _ = await people_named(names[:1])
    if len(names) != 1 or not people:
        await ctx.reply(Text("请发送“登记证书 姓名”，例如：登记证书 张三。"
                             + (f"名册中没有“{names[0]}”。" if names else "")))
        return
    await CertificateDialog.start(ctx, people[0].id, data={
        "holder": people[0].id, "holder_kind": HolderKind.PERSON.value,
        "holder_name": people[0].name}, lead=f"为{people[0].name}登记证书，随时回复“取消”放弃。")


@router.on(typed(CONTRACTOR))
async def for_contractor(ctx: Context) -> None:
    if not await managers_only(ctx, "承包商资质登记"):
        return
    name = " ".join(after(ctx, CONTRACTOR))
    company = await contractor_named(name) if name else None
    if company is None:
        await ctx.reply(Text("请发送“登记资质 承包商名称”，例如：登记资质 华安机电安装有限公司。"
                             + (f"承包商名录中没有“{name}”。" if name else "")))
        return
    await CertificateDialog.start(ctx, company.id, data={
        "holder": company.id, "holder_kind": HolderKind.CONTRACTOR.value,
        "holder_name": company.name}, lead=f"为{company.name}登记资质，随时回复“取消”放弃。")


class CertificateDialog(Dialog[str]):
    """The type, the number, the issue date, the expiry, then the photo."""

    kind = "certificate"
    back_allowed = True

    def types(self) -> list[CertificateType]:
        return [t for t in self.ctx.rules.qualification.certificates.values()
                if t.holder == self.data["holder_kind"]]

    def chosen(self) -> CertificateType:
        return self.ctx.rules.qualification.certificates[self.data["type_code"]]

    async def _ask_type(self) -> str:
        listed = "\n".join(f"{n}. {t.label}" for n, t in enumerate(self.types(), 1))
        return f"1/5 证书类型是？回复序号或名称：\n{listed}"

    async def _type(self, text: str) -> str:
        types = self.types()
        if text.isdigit() and 1 <= int(text) <= len(types):
            return types[int(text) - 1].code
        found = self.ctx.rules.qualification.certificate_type(text)
        if found is None or found not in types:
            raise Reask(f"没有“{text}”这种证书。")
        return found.code

    async def _ask_number(self) -> str:
        return "2/5 证书编号是？"

    async def _number(self, text: str) -> str:
        if not 4 <= len(text) <= 64 or " " in text:
            raise Retry("请回复证书上的编号（4到64个字符，不含空格）。")
        holder = (await taken_numbers([(self.data["type_code"], text)])).get(
            (self.data["type_code"], text))
        if holder is not None and holder != self.data["holder"]:
            raise Retry(f"编号 {text} 已登记在他人名下，请核对后重新回复。")
        return text

    async def _ask_issued(self) -> str:
        return "3/5 发证（或最近一次复审）日期是？例如：2024-03-01"

    async def _issued(self, text: str) -> str:
        day = parse_day(text)
        if day is None:
            raise Retry("请回复日期，例如：2024-03-01。")
        if day > self.ctx.local(self.ctx.now).date():
            raise Retry("发证日期不能晚于今天，请核对。")
        return day.isoformat()

    def defaults(self) -> tuple[date, date | None]:
        return default_dates(self.chosen(), date.fromisoformat(self.data["issued"]))

    async def _ask_expires(self) -> str:
        expires, review = self.defaults()
        rule = f"按规定有效期至{expires:%Y-%m-%d}" + (
            f"，{review:%Y-%m-%d}前复审" if review else "")
        return f"4/5 有效期至哪天？{rule}，与证书一致请回复“默认”，否则回复证书上的日期。"

    async def _expires(self, text: str) -> str:
        if text in DEFAULT_WORDS:
            return self.defaults()[0].isoformat()
        day = parse_day(text)
        if day is None:
            raise Retry("请回复“默认”或证书上的有效期，例如：2030-03-01。")
        if day < date.fromisoformat(self.data["issued"]) + timedelta(days=1):
            raise Retry("有效期应晚于发证日期，请核对。")
        return day.isoformat()

    async def _ask_photo(self) -> str:
        return "5/5 请发送证书照片（正面，字迹清楚）。"

    type_code = Step(_ask_type, _type)
    number = Step(_ask_number, _number)
    issued = Step(_ask_issued, _issued)
    expires = Step(_ask_expires, _expires)
    scan = PhotoStep(_ask_photo, "请发送证书的照片，不是文字。")

    @classmethod
    async def load(cls, ctx: Context, row: DialogRow) -> str | None:
        return str(row.data.get("holder", "")) or None

    async def finish(self) -> None:
        ctx, d = self.ctx, self.data
        kind = self.chosen()
        issued = date.fromisoformat(d["issued"])
        expires = date.fromisoformat(d["expires"])
        _, review = default_dates(kind, issued)
        new = NewCertificate(HolderKind(d["holder_kind"]), d["holder"], kind, d["number"],
                             issued, expires, min(review, expires) if review else None,
                             d["scan"])
        await self.close()
        try:
            added, _ = await register([new], "chat", ctx.me.id, ctx.now,
                                      ctx.rules.qualification.reminder_days)
        except CertificateError as refused:
            await self.say(Text(f"{refused}，未登记。"))
            return
        due = (f"，{review:%Y-%m-%d}前复审" if review and review < expires else "")
        await self.say(Text(f"已{'登记' if added else '更新'}{d['holder_name']}的{kind.label}"
                            f" {d['number']}，有效期至{expires:%Y-%m-%d}{due}。到期前60、30、"
                            "7天将提醒本人、其上级和安全管理员。"))
        if new.holder_kind is HolderKind.PERSON and d["holder"] != ctx.me.id:
            await ctx.send(Text(f"您的{kind.label}（{d['number']}）已由{ctx.me.name}登记，"
                                f"有效期至{expires:%Y-%m-%d}{due}。发送“我的档案”可查看。"),
                           to_users=[d["holder"]])


