"""The report dialog: a photo or a few words become a draft ticket; the bot asks only for what is
still missing (area, category, description), then a summary card files it.

The draft is a ticket in state `draft` and the open question is the person's dialog row, so a
restart in the middle loses nothing. 取消 and 返回 work at every step; an answer that does not fit
is asked again with a hint. Photos join the draft at any step.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from handlers.dialog import Dialog, Reask, Retry, Step
from handlers.hazard.cards import Click, open_click, owner_cards, plan_cards, settle
from handlers.hazard.views import facts, summary_card, when
from handlers.replies import photo_refused
from handlers.router import Context, Router
from models.catalog import Grade, area_answer, area_in_text, area_near
from models.dialog import Dialog as DialogRow
from models.dialog import close_dialog, save_data
from models.hazard import (
    CardPurpose,
    Refused,
    Status,
    Ticket,
    assignment,
    cancel,
    draft_by_id,
    earlier_alike,
    file_ticket,
    find_repeat,
    has_open_tickets,
    last_draft,
    link_repeat,
    mark_recurrence,
    new_card,
    new_draft,
    recurrences_since,
    save_draft,
)
from models.inbound import InboundKind
from models.org import Area, Role, every_area, people_with, person
from models.outgoing import Outgoing, Text

router = Router()          # what starts a report
clicks = Router()          # the summary card
TRIGGERS = ("上报", "隐患", "随手拍", "上报隐患", "报告隐患", "我要上报")
MENU_KEY = "report"
RESUME = "继续上报"
DONE_WORDS = ("已整改", "整改完成")     # an owner's words, answered by the rectify flow
AREAS_LISTED = 30        # at most, and fewer where long names would not fit one text; the rest
                         # are named by the reporter, not shown
PROPOSE_AFTER = 3         # 复发 of one area and category in a quarter: a 管理缺陷 is proposed
EDITABLE = (("area", "区域"), ("category", "类别"), ("description", "描述"), ("grade", "等级"))


def _area_question(areas: Sequence[Area], room: int) -> str:
    """The areas a reporter picks from by number: the first AREAS_LISTED, or as many as the
    text holds; the question then says how many there are."""
    head = "请问隐患在哪个区域？请回复序号或名称，也可以发送位置："
    more = f"\n……共{len(areas)}个区域，其他区域请直接回复名称"
    room -= len((head + more).encode())
    choices = []
    for i, area in enumerate(areas[:AREAS_LISTED], 1):
        choice = f"\n{i}. {area.name}"
        room -= len(choice.encode())
        if room < 0:
            break
        choices.append(choice)
    return head + "".join(choices) + (more if len(choices) < len(areas) else "")


SEPARATORS = " \t\n，,。.;；:：、"


def _without(text: str, labels: Sequence[str]) -> str:
    """`text` without the words that are only a label ("3号车间 配电箱门没关", "配电箱门没关，
    3号车间", a typo such as "锅炉房房"): they answer a question. A label inside the reporter's
    sentence stays ("二号仓库的灭火器过期了" keeps 二号仓库): the description is their words."""
    words = re.split(f"([{re.escape(SEPARATORS)}]+)", text)
    for n, word in enumerate(words):
        if any(label in word and len(word.replace(label, "", 1)) < 2 for label in labels):
            words[n] = " "
    return "".join(words)


def _describes(text: str) -> bool:
    return len(text) >= 2 and not text.isdigit() and text not in TRIGGERS


class ReportDialog(Dialog[Ticket]):
    """Area, category and description, each asked only while missing; then the summary card
    (confirm), from which 修改 leads to edit and, for the grade, to grade."""

    kind = "report"
    back_allowed = True
    passes = (*DONE_WORDS, "申请延期", "转派")

    async def _ask_area(self) -> str:
        return _area_question(await every_area(), self.room)

    async def _ask_category(self) -> str:
        choices = "\n".join(f"{i}. {c.name}"
                            for i, c in enumerate(self.ctx.rules.catalog.categories, 1))
        return f"请问属于哪一类隐患？请回复序号或名称：\n{choices}"

    async def _ask_confirm(self) -> Outgoing:
        draft = self.subject
        card = await new_card(draft, CardPurpose.SUMMARY, [self.ctx.me.id], self.ctx.now)
        self.remember(card=card.task_id)
        await save_data(self.row)
        return summary_card(await facts(draft, self.ctx.rules.catalog), card.task_id)

    async def _area(self, text: str) -> None:
        areas = await every_area()
        area = area_answer(text, areas, AREAS_LISTED)
        if area is None:
            raise Reask(f"没有找到“{text[:20]}”对应的区域。")
        self.subject.area_id = area.code
        await self.fill(text, areas)
        await self.advance(changed=True)

    async def _category(self, text: str) -> None:
        category = self.ctx.rules.catalog.answer(text)
        if category is None:
            raise Reask(f"没有找到“{text[:20]}”对应的类别。")
        self.subject.category = category.code
        await self.fill(text)
        await self.advance(changed=True)

    async def _description(self, text: str) -> None:
        if not _describes(text):
            raise Retry("请用一句话说明隐患情况，例如：配电箱门没关，有裸露电线。")
        await self.fill(text)
        await self.advance(changed=True)

    async def _confirm(self, text: str) -> None:
        if text in ("提交", "确认"):
            await _submit(self.ctx, self.subject)
            self.moved = True
        elif text == "修改":
            await self.ask("edit")
        else:
            raise Retry("请点击卡片上的“提交”，或回复“修改”“取消”。")

    async def _edit(self, text: str) -> None:
        chosen = next((key for i, (key, label) in enumerate(EDITABLE, 1)
                       if text in (str(i), label)), None)
        if chosen is None:
            raise Reask(f"没有“{text[:20]}”这一项。")
        if chosen == "grade":
            await self.ask("grade")
            return
        _clear(self.subject, chosen)
        await self.advance(changed=True)

    async def _grade(self, text: str) -> None:
        grade = {"1": Grade.GENERAL, "一般": Grade.GENERAL, "2": Grade.MAJOR, "重大": Grade.MAJOR
                 }.get(text)
        if grade is None:
            raise Retry("请回复 1（一般）或 2（重大）。")
        self.subject.grade, self.subject.grade_reason = grade, f"上报人选择{grade.value}"
        self.remember(grade_chosen=True)
        await self.advance(changed=True)

    area = Step(_ask_area, _area)
    category = Step(_ask_category, _category)
    description = Step("请用一句话描述隐患情况，例如：配电箱门没关，有裸露电线。", _description)
    confirm = Step(_ask_confirm, _confirm)
    edit = Step("请问要修改哪一项？请回复序号（补充照片可直接发送）：\n" + "\n".join(
        f"{i}. {label}" for i, (_, label) in enumerate(EDITABLE, 1)), _edit)
    grade = Step("请选择隐患等级：\n1. 一般\n2. 重大", _grade)

    @property
    def room(self) -> int:
        """What a question may take of one message, after its lead."""
        return self.ctx.limits.message_bytes - len(f"{self.lead}\n".encode())

    @classmethod
    async def load(cls, ctx: Context, row: DialogRow) -> Ticket | None:
        return await draft_by_id(row.ticket_id)

    @classmethod
    async def gone(cls, ctx: Context, row: DialogRow) -> None:
        await close_dialog(row.user_id)
        await ctx.reply(Text("这次上报已经结束。发送照片或“上报”可以开始新的上报。"))

    @classmethod
    async def expire(cls, ctx: Context, row: DialogRow) -> None:
        """An idle draft is kept; the person is told how to come back to it."""
        await close_dialog(row.user_id)
        minutes = int(ctx.rules.draft_idle.total_seconds() // 60)
        await ctx.reply(Text(f"您的隐患上报已超过{minutes}分钟没有回复，草稿已为您保存。"
                             f"回复“{RESUME}”可以接着填写。"))

    def next_step(self) -> str:
        draft = self.subject
        if not draft.area_id:
            return "area"
        if not draft.category:
            return "category"
        if not draft.description:
            return "description"
        return "confirm"

    async def advance(self, lead: str = "", *, changed: bool = False) -> None:
        """Ask the first thing still missing, or show the summary card when nothing is. The
        draft is saved here, once, when the caller `changed` it or the grade is suggested."""
        step = self.next_step()
        draft = self.subject
        if step == "confirm" and not self.data.get("grade_chosen"):
            category = self.ctx.rules.catalog.get(draft.category)
            hint = self.ctx.rules.catalog.suggest(draft.description, category)
            draft.grade, draft.grade_reason = hint.grade, hint.grade_reason
            draft.defect_type, draft.defect_reason = hint.defect_type, hint.defect_reason
            changed = True
        if changed:
            await save_draft(draft, self.ctx.now)
        await self.ask(step, lead)

    async def screen(self, text: str) -> None:
        if text in TRIGGERS or text == RESUME:
            raise Reask("")
        if not text:
            raise Reask("没有收到文字内容。")
        limit = self.ctx.rules.text_max
        if len(text) > limit:
            raise Reask(f"内容太长了（最多{limit}字），请精简后再发。")

    async def cancel(self) -> None:
        await _cancel(self.ctx, self.subject)
        self.moved = True

    async def no_way_back(self) -> None:
        await self.reask("已经是第一步了。回复“取消”可以放弃本次上报。")

    async def went_back(self, step: str) -> None:
        _clear(self.subject, step)
        await save_draft(self.subject, self.ctx.now)
        await self.reask()

    async def photo(self) -> None:
        if not await photo_refused(self.ctx):
            await self.add_photo()

    async def other(self) -> None:
        event = self.ctx.event
        if event.kind is InboundKind.LOCATION and event.location:
            await self._located()
            return
        voice = event.kind is InboundKind.VOICE
        await self.reask("暂时无法识别语音，请用文字回复。" if voice else "")

    async def _located(self) -> None:
        where = self.ctx.event.location
        assert where is not None
        draft = self.subject
        draft.location = {"latitude": where.latitude, "longitude": where.longitude,
                          "label": where.label}
        lead = ""
        if not draft.area_id:
            area = area_near(where.latitude, where.longitude, where.label, await every_area())
            if area is None:
                lead = "没能根据位置确定区域。"
            else:
                draft.area_id = area.code
                lead = f"已根据位置确定区域：{area.name}。"
        await self.advance(lead, changed=True)

    async def add_photo(self) -> None:
        """Photos sent together join quietly; a later one is confirmed and the question
        repeated."""
        ctx, draft = self.ctx, self.subject
        last = self.data.get("photo_at")
        quiet = (last is not None
                 and ctx.now - datetime.fromisoformat(last) <= ctx.rules.photo_window)
        added = ctx.event.media not in draft.photos       # a new draft starts with its photo
        if added:
            draft.photos = [*draft.photos, ctx.event.media]
        self.remember(photo_at=ctx.now.isoformat())
        if quiet:
            if added:
                await save_draft(draft, ctx.now)
            await save_data(self.row)
            return
        owner_hint = ""
        if len(draft.photos) == 1 and await has_open_tickets(ctx.me.id):
            owner_hint = "如是整改后的照片，请回复“已整改”；如是新发现的隐患，请继续回答。"
        await self.advance(f"已收到照片（共{len(draft.photos)}张）。{owner_hint}",
                           changed=added)   # saves the dialog with the photo's time

    async def fill(self, text: str, areas: Sequence[Area] | None = None) -> None:
        """Take from free text whatever is still missing: area, category, description.
        `areas`: the list already read in this event, if any. The caller saves the draft."""
        draft, catalog = self.subject, self.ctx.rules.catalog
        rest = text
        if areas is None:
            areas = await every_area()
        if not draft.area_id:
            found = area_in_text(text, areas)
            if found:
                draft.area_id = found[0].code
        area = next((a for a in areas if a.code == draft.area_id), None) if draft.area_id else None
        if area is not None:
            rest = _without(rest, (area.name, *area.aliases))
        if not draft.category:
            category = catalog.find(rest)
            if category:
                draft.category = category.code
        named = catalog.get(draft.category)
        if named:       # "现场管理类" answers the category question; it describes nothing
            rest = _without(rest, (named.name, named.name.removesuffix("类")))
        rest = rest.strip(SEPARATORS)
        if not draft.description and _describes(rest):
            draft.description = rest


def _clear(draft: Ticket, step: str) -> None:
    if step == "area":
        draft.area_id = None
    elif step == "category":
        draft.category = ""
    elif step == "description":
        draft.description = ""


# ---------------------------------------------------------------------------------------------
# Starting


async def _begin(ctx: Context, *, photos: Sequence[str] = ()) -> ReportDialog:
    draft = await new_draft(ctx.me.id, photos, ctx.now)
    row = await ReportDialog.open(ctx, "area", ticket_id=draft.id)
    return ReportDialog(ctx, row, draft)


@router.text(*TRIGGERS)
async def start_by_word(ctx: Context) -> None:
    await (await _begin(ctx)).advance("好的，开始上报隐患。可以先发一张现场照片。")


@router.on(lambda e: e.kind is InboundKind.MENU and e.event_key == MENU_KEY)
async def start_by_menu(ctx: Context) -> None:
    await start_by_word(ctx)


@router.kind(InboundKind.IMAGE)
async def start_by_photo(ctx: Context) -> None:
    if await photo_refused(ctx):
        return
    await (await _begin(ctx, photos=[ctx.event.media])).add_photo()


@router.text(RESUME)
async def resume(ctx: Context) -> None:
    draft = await last_draft(ctx.me.id)
    if draft is None:
        await ctx.reply(Text("您没有未完成的上报。发送照片或“上报”即可开始。"))
        return
    row = await ReportDialog.open(ctx, "area", ticket_id=draft.id)
    await ReportDialog(ctx, row, draft).advance(
        f"继续填写您{when(draft.created_at, ctx.rules.tz)}开始的上报。")


async def start_by_text(ctx: Context) -> bool:
    """Free text that names an area or a category starts a report by itself."""
    text, areas = ctx.event.text, await every_area()
    if not (area_in_text(text, areas) or ctx.rules.catalog.find(text)):
        return False
    dialog = await _begin(ctx)
    await dialog.fill(text.strip(), areas)
    await dialog.advance(changed=True)
    return True


# ---------------------------------------------------------------------------------------------
# The summary card and filing


@clicks.card_action(CardPurpose.SUMMARY.value)
async def summary_clicked(ctx: Context) -> None:
    click = await open_click(ctx, CardPurpose.SUMMARY)
    if click is None:
        return
    row = await ctx.dialog(ReportDialog.kind)
    if (click.ticket.status is not Status.DRAFT or row is None
            or row.data.get("card") != click.card.task_id):
        await ctx.reply(Text("这张确认卡片已过期，请以最新的卡片为准。"))
        return
    await _summary_action(ctx, click, row)


async def _summary_action(ctx: Context, click: Click, row: DialogRow) -> None:
    shown = {"submit": "提交", "edit": "修改", "cancel": "取消"}[click.action]
    if not await settle(ctx, click, shown):
        return
    if click.action == "submit":
        await _submit(ctx, click.ticket)
    elif click.action == "cancel":
        await _cancel(ctx, click.ticket)
    else:
        await ReportDialog(ctx, row, click.ticket).ask("edit")


async def _cancel(ctx: Context, draft: Ticket) -> None:
    await cancel(draft, ctx.me, "上报人取消", ctx.now)
    await close_dialog(ctx.me.id)
    await ctx.reply(Text("已取消本次上报。"))


async def _submit(ctx: Context, draft: Ticket) -> None:
    catalog = ctx.rules.catalog
    category = catalog.get(draft.category)
    assert category is not None
    original = await find_repeat(draft, ctx.now - ctx.rules.repeat_window)
    if original is not None:
        await _link(ctx, draft, original)
        return
    try:
        who = await assignment(draft, category)
    except Refused as refused:
        await ctx.reply(Text(refused.reason))
        return
    await file_ticket(draft, ctx.now, ctx.local(ctx.now).strftime("%Y%m%d"), who, category,
                      ctx.rules.calendar)
    earlier = await earlier_alike(draft, ctx.now - ctx.rules.recurrence_window)
    if earlier:
        await mark_recurrence(draft, earlier, ctx.now)
    await close_dialog(ctx.me.id)
    if draft.status is Status.PLAN:
        await plan_cards(ctx, draft)
        await ctx.reply(Text(f"已提交，编号 {draft.number}。{draft.grade_reason}。"
                             "该隐患按重大隐患处理，已请主要负责人组织制定治理方案，"
                             f"整改责任人：{who.owner.name}。感谢您的上报！"))
    else:
        await owner_cards(ctx, draft)
        await ctx.reply(Text(f"已提交，编号 {draft.number}。整改责任人：{who.owner.name}，"
                             f"整改期限：{when(draft.deadline, ctx.rules.tz)}。感谢您的上报！"))
    if earlier:
        await _recurrence_notice(ctx, draft, who.owner.id)


async def _recurrence_notice(ctx: Context, ticket: Ticket, owner: str) -> None:
    """The hazard came back: the owner and the safety managers look for the cause. The third
    of an area and category in a quarter proposes a 管理缺陷 ticket to the safety managers."""
    f = await facts(ticket, ctx.rules.catalog)
    days = ctx.rules.recurrence_window.days
    managers = await people_with(Role.SAFETY_MANAGER)
    to = sorted({owner, *managers} - {""})
    await ctx.send(Text(f"【复发】{ticket.number}（{f.title}）与{days}天内已闭环的"
                        f"{'、'.join(ticket.recurs or [])}相似，疑似同一隐患反复出现。"
                        "整改时请查明根本原因，复查时将确认是否属于管理缺陷。"), to_users=to)
    local = ctx.local(ctx.now)
    quarter = local.replace(month=(local.month - 1) // 3 * 3 + 1, day=1, hour=0, minute=0,
                            second=0, microsecond=0)
    recurred = await recurrences_since(ticket, quarter)
    if len(recurred) == PROPOSE_AFTER and managers:
        await ctx.send(Text(
            f"【建议】{f.title} 本季度已复发{len(recurred)}次（"
            f"{'、'.join(t.number or t.label for t in recurred)}），同类隐患反复出现，可能存在"
            "管理缺陷。建议登记一项管理缺陷隐患，查找制度、培训或检查方面的原因，可直接发送："
            f"{f.area} 同类隐患本季度复发{len(recurred)}次，巡检和管理制度未落实"),
            to_users=sorted(managers))


async def _link(ctx: Context, draft: Ticket, original: Ticket) -> None:
    await link_repeat(draft, original, ctx.now)
    await close_dialog(ctx.me.id)
    f = await facts(original, ctx.rules.catalog)
    await ctx.reply(Text(f"该隐患与已登记的 {original.number}（{f.title}，整改责任人{f.owner}）"
                         "相同，已合并记录，无需重复登记。感谢您的上报！"))
    reporter = await person(draft.reporter_id)
    await ctx.send(Text(f"{original.number}（{f.title}）被"
                        f"{reporter.name if reporter else draft.reporter_id}再次上报，"
                        f"累计{original.reports}次，请抓紧整改。"),
                   to_users=[original.owner_id or ""])
