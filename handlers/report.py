"""The report dialog: a photo or a few words become a draft ticket; the bot asks only for what is
still missing (area, category, description), then a summary card files it.

The draft is a ticket in state `draft` and the open question is a `Dialog` row, so a restart in
the middle loses nothing. 取消 and 返回 work at every step; an answer that does not fit is asked
again with a hint.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from handlers.answers import photo_refused
from handlers.cards import Click, open_click, settle
from handlers.notices import owner_cards, plan_cards
from handlers.router import Context, Router
from handlers.views import facts, summary_card, when
from handlers.workflow import router as owner_words
from models.catalog import Grade, area_answer, area_in_text, area_near
from models.dialog import Dialog, ask, close_dialog, go_back, open_dialog
from models.hazard import (
    CardPurpose,
    Refused,
    Status,
    Ticket,
    assignment,
    cancel,
    file_ticket,
    find_repeat,
    link_repeat,
    new_card,
)
from models.inbound import InboundKind
from models.org import Area, User, every_area
from models.outgoing import MESSAGE_BYTES, Text

router = Router()
KIND = "report"
TRIGGERS = ("上报", "隐患", "随手拍", "上报隐患", "报告隐患", "我要上报")
MENU_KEY = "report"
RESUME = "继续上报"
AREAS_LISTED = 30        # at most, and fewer where long names would not fit one text; the rest
                         # are named by the reporter, not shown
EDITABLE = (("area", "区域"), ("category", "类别"), ("description", "描述"), ("grade", "等级"))


# ---------------------------------------------------------------------------------------------
# Starting


@router.text(*TRIGGERS)
async def start_by_word(ctx: Context) -> None:
    await _begin(ctx)


@router.on(lambda e: e.kind is InboundKind.MENU and e.event_key == MENU_KEY)
async def start_by_menu(ctx: Context) -> None:
    await _begin(ctx)


@router.kind(InboundKind.IMAGE)
async def start_by_photo(ctx: Context) -> None:
    if await photo_refused(ctx):
        return
    draft, dialog = await _begin(ctx, ask_now=False, photos=[ctx.event.media])
    await _add_photo(ctx, dialog, draft)


@router.text(RESUME)
async def resume(ctx: Context) -> None:
    draft = await Ticket.filter(reporter_id=ctx.me.id, status=Status.DRAFT).order_by("-id").first()
    if draft is None:
        await ctx.reply(Text("您没有未完成的上报。发送照片或“上报”即可开始。"))
        return
    dialog = await open_dialog(ctx.me.id, ctx.event.platform, KIND, "area", ctx.now,
                               ctx.rules.draft_idle, ticket_id=draft.id)
    await _advance(ctx, dialog, draft,
                   lead=f"继续填写您{when(draft.created_at, ctx.rules.tz)}开始的上报。")


async def put_aside(ctx: Context, dialog: Dialog) -> None:
    """An idle draft is kept; the person is told how to come back to it."""
    await close_dialog(ctx.me.id)
    minutes = int(ctx.rules.draft_idle.total_seconds() // 60)
    await ctx.reply(Text(f"您的隐患上报已超过{minutes}分钟没有回复，草稿已为您保存。"
                         f"回复“{RESUME}”可以接着填写。"))


async def names_a_hazard(ctx: Context) -> bool:
    """Free text that names an area or a category starts a report by itself."""
    text = ctx.event.text
    return bool(area_in_text(text, await every_area()) or ctx.rules.catalog.find(text))


async def start_by_text(ctx: Context) -> None:
    draft, dialog = await _begin(ctx, ask_now=False)
    await _fill(ctx, draft, ctx.event.text.strip())
    await _advance(ctx, dialog, draft, changed=True)


async def _begin(ctx: Context, *, ask_now: bool = True, photos: Sequence[str] = ()
                 ) -> tuple[Ticket, Dialog]:
    draft = await Ticket.create(reporter_id=ctx.me.id, photos=list(photos), created_at=ctx.now,
                                updated_at=ctx.now)
    dialog = await open_dialog(ctx.me.id, ctx.event.platform, KIND, "area", ctx.now,
                               ctx.rules.draft_idle, ticket_id=draft.id)
    if ask_now:
        await _advance(ctx, dialog, draft, lead="好的，开始上报隐患。可以先发一张现场照片。")
    return draft, dialog


# ---------------------------------------------------------------------------------------------
# Answers inside the dialog


async def on_dialog(ctx: Context, dialog: Dialog) -> None:
    draft = await Ticket.get_or_none(id=dialog.ticket_id or 0, status=Status.DRAFT)
    if draft is None:
        await close_dialog(ctx.me.id)
        await ctx.reply(Text("这次上报已经结束。发送照片或“上报”可以开始新的上报。"))
        return
    event = ctx.event
    if event.kind is InboundKind.IMAGE:
        if not await photo_refused(ctx):
            await _add_photo(ctx, dialog, draft)
        return
    if event.kind is InboundKind.LOCATION and event.location:
        await _located(ctx, dialog, draft)
        return
    if event.kind is not InboundKind.TEXT:
        voice = event.kind is InboundKind.VOICE
        await _ask(ctx, dialog, draft, lead="暂时无法识别语音，请用文字回复。" if voice else "")
        return
    await _answer(ctx, dialog, draft, event.text.strip())


async def _answer(ctx: Context, dialog: Dialog, draft: Ticket, text: str) -> None:
    if text == "取消":
        await _cancel(ctx, draft)
        return
    if text == "返回":
        await _back(ctx, dialog, draft)
        return
    if text in TRIGGERS or text == RESUME:
        await _ask(ctx, dialog, draft)
        return
    if await owner_words.dispatch(ctx):     # 已整改, 申请延期, 转派: the owner's flow takes over
        return
    if not text:
        await _ask(ctx, dialog, draft, lead="没有收到文字内容。")
        return
    if len(text) > ctx.rules.text_max:
        await _ask(ctx, dialog, draft,
                   lead=f"内容太长了（最多{ctx.rules.text_max}字），请精简后再发。")
        return
    step = dialog.step
    if step == "confirm":
        await _confirm_by_text(ctx, dialog, draft, text)
    elif step == "edit":
        await _choose_edit(ctx, dialog, draft, text)
    elif step == "grade":
        await _choose_grade(ctx, dialog, draft, text)
    elif step in ("area", "category"):
        await _answer_choice(ctx, dialog, draft, step, text)
    elif step == "description":
        if not _describes(text):
            await ctx.reply(Text("请用一句话说明隐患情况，例如：配电箱门没关，有裸露电线。"))
            return
        await _fill(ctx, draft, text)
        await _advance(ctx, dialog, draft, changed=True)


async def _answer_choice(ctx: Context, dialog: Dialog, draft: Ticket, step: str,
                         text: str) -> None:
    areas = await every_area()
    if step == "area":
        area = area_answer(text, areas, AREAS_LISTED)
        if area is None:
            await _ask(ctx, dialog, draft, lead=f"没有找到“{text[:20]}”对应的区域。")
            return
        draft.area_id = area.code
    else:
        category = ctx.rules.catalog.answer(text)
        if category is None:
            await _ask(ctx, dialog, draft, lead=f"没有找到“{text[:20]}”对应的类别。")
            return
        draft.category = category.code
    await _fill(ctx, draft, text, areas)
    await _advance(ctx, dialog, draft, changed=True)


async def _located(ctx: Context, dialog: Dialog, draft: Ticket) -> None:
    where = ctx.event.location
    assert where is not None
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
    await _advance(ctx, dialog, draft, changed=True, lead=lead)


async def _fill(ctx: Context, draft: Ticket, text: str,
                areas: Sequence[Area] | None = None) -> None:
    """Take from free text whatever is still missing: area, category, description. `areas`:
    the list the caller already read in this event, if any. The caller saves the draft."""
    rest = text
    if areas is None:
        areas = await every_area()
    if not draft.area_id:
        found = area_in_text(text, areas)
        if found:
            draft.area_id = found[0].code
    area = next((a for a in areas if a.code == draft.area_id), None) if draft.area_id else None
    if area is not None:
        for label in sorted((area.name, *area.aliases), key=len, reverse=True):
            rest = rest.replace(label, " ")
    if not draft.category:
        category = ctx.rules.catalog.find(rest)
        if category:
            draft.category = category.code
    named = ctx.rules.catalog.get(draft.category)
    if named:       # "现场管理类" answers the category question; it describes nothing
        for label in (named.name, named.name.removesuffix("类")):
            rest = rest.replace(label, " ")
    rest = rest.strip(" ，,。.;；:：")
    if not draft.description and _describes(rest):
        draft.description = rest


def _describes(text: str) -> bool:
    return len(text) >= 2 and not text.isdigit() and text not in TRIGGERS


async def _save(ctx: Context, draft: Ticket) -> None:
    draft.updated_at = ctx.now
    await draft.save()


# ---------------------------------------------------------------------------------------------
# Photos


async def _add_photo(ctx: Context, dialog: Dialog, draft: Ticket) -> None:
    """Photos sent together join quietly; a later one is confirmed and the question repeated."""
    last = dialog.data.get("photo_at")
    quiet = last is not None and ctx.now - datetime.fromisoformat(last) <= ctx.rules.photo_window
    added = ctx.event.media not in draft.photos       # a new draft starts with its photo
    if added:
        draft.photos = [*draft.photos, ctx.event.media]
    dialog.data = {**dialog.data, "photo_at": ctx.now.isoformat()}
    if quiet:
        if added:
            await _save(ctx, draft)
        await dialog.save()
        return
    owner_hint = ""
    if len(draft.photos) == 1 and await Ticket.exists(owner_id=ctx.me.id, status=Status.OPEN):
        owner_hint = "如是整改后的照片，请回复“已整改”；如是新发现的隐患，请继续回答。"
    await _advance(ctx, dialog, draft, changed=added,   # saves the dialog with the photo's time
                   lead=f"已收到照片（共{len(draft.photos)}张）。{owner_hint}")


# ---------------------------------------------------------------------------------------------
# Questions


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


def _missing(draft: Ticket) -> str:
    if not draft.area_id:
        return "area"
    if not draft.category:
        return "category"
    if not draft.description:
        return "description"
    return "confirm"


async def _advance(ctx: Context, dialog: Dialog, draft: Ticket, *, changed: bool = False,
                   lead: str = "") -> None:
    """Ask the first thing still missing, or show the summary card when nothing is. The draft
    is saved here, once, when the caller `changed` it or the grade is suggested."""
    step = _missing(draft)
    if step == "confirm" and not dialog.data.get("grade_chosen"):
        category = ctx.rules.catalog.get(draft.category)
        hint = ctx.rules.catalog.suggest(draft.description, category)
        draft.grade, draft.grade_reason = hint.grade, hint.grade_reason
        draft.defect_type, draft.defect_reason = hint.defect_type, hint.defect_reason
        changed = True
    if changed:
        await _save(ctx, draft)
    await ask(dialog, step, ctx.now, ctx.rules.draft_idle)
    await _ask(ctx, dialog, draft, lead)


async def _ask(ctx: Context, dialog: Dialog, draft: Ticket, lead: str = "") -> None:
    """Ask the dialog's question. `lead` (an acknowledgement, or why the last answer did not
    fit) goes in the same message: one notification on the person's phone a step."""
    question = await _question(ctx, dialog.step, MESSAGE_BYTES - len(f"{lead}\n".encode()))
    if question is None:
        if lead:
            await ctx.reply(Text(lead))
        await _summary(ctx, dialog, draft)
    else:
        await ctx.reply(Text(f"{lead}\n{question}" if lead else question))


async def _question(ctx: Context, step: str, room: int) -> str | None:
    """The question of a step in at most `room` bytes, None for the summary card."""
    if step == "area":
        return _area_question(await every_area(), room)
    if step == "category":
        choices = "\n".join(f"{i}. {c.name}"
                            for i, c in enumerate(ctx.rules.catalog.categories, 1))
        return f"请问属于哪一类隐患？请回复序号或名称：\n{choices}"
    if step == "description":
        return "请用一句话描述隐患情况，例如：配电箱门没关，有裸露电线。"
    if step == "edit":
        choices = "\n".join(f"{i}. {label}" for i, (_, label) in enumerate(EDITABLE, 1))
        return f"请问要修改哪一项？请回复序号（补充照片可直接发送）：\n{choices}"
    if step == "grade":
        return "请选择隐患等级：\n1. 一般\n2. 重大"
    return None


async def _summary(ctx: Context, dialog: Dialog, draft: Ticket) -> None:
    card = await new_card(draft, CardPurpose.SUMMARY, [ctx.me.id], ctx.now)
    dialog.data = {**dialog.data, "card": card.task_id}
    await dialog.save()
    await ctx.reply(summary_card(await facts(draft, ctx.rules.catalog), card.task_id))


async def _back(ctx: Context, dialog: Dialog, draft: Ticket) -> None:
    """Go back one question; its answer is cleared so it can be given again."""
    step = await go_back(dialog, ctx.now, ctx.rules.draft_idle)
    if step is None:
        await _ask(ctx, dialog, draft, lead="已经是第一步了。回复“取消”可以放弃本次上报。")
        return
    _clear(draft, step)
    await _save(ctx, draft)
    await _ask(ctx, dialog, draft)


def _clear(draft: Ticket, step: str) -> None:
    if step == "area":
        draft.area_id = None
    elif step == "category":
        draft.category = ""
    elif step == "description":
        draft.description = ""


async def _choose_edit(ctx: Context, dialog: Dialog, draft: Ticket, text: str) -> None:
    chosen = next((key for i, (key, label) in enumerate(EDITABLE, 1)
                   if text in (str(i), label)), None)
    if chosen is None:
        await _ask(ctx, dialog, draft, lead=f"没有“{text[:20]}”这一项。")
        return
    if chosen == "grade":
        await ask(dialog, "grade", ctx.now, ctx.rules.draft_idle)
        await _ask(ctx, dialog, draft)
        return
    _clear(draft, chosen)
    await _advance(ctx, dialog, draft, changed=True)


async def _choose_grade(ctx: Context, dialog: Dialog, draft: Ticket, text: str) -> None:
    grade = {"1": Grade.GENERAL, "一般": Grade.GENERAL, "2": Grade.MAJOR, "重大": Grade.MAJOR
             }.get(text)
    if grade is None:
        await ctx.reply(Text("请回复 1（一般）或 2（重大）。"))
        return
    draft.grade, draft.grade_reason = grade, f"上报人选择{grade.value}"
    dialog.data = {**dialog.data, "grade_chosen": True}
    await _advance(ctx, dialog, draft, changed=True)


async def _confirm_by_text(ctx: Context, dialog: Dialog, draft: Ticket, text: str) -> None:
    if text in ("提交", "确认"):
        await _submit(ctx, draft)
    elif text == "修改":
        await ask(dialog, "edit", ctx.now, ctx.rules.draft_idle)
        await _ask(ctx, dialog, draft)
    else:
        await ctx.reply(Text("请点击卡片上的“提交”，或回复“修改”“取消”。"))


# ---------------------------------------------------------------------------------------------
# The summary card and filing


@router.card_action(CardPurpose.SUMMARY.value)
async def summary_clicked(ctx: Context) -> None:
    click = await open_click(ctx, CardPurpose.SUMMARY)
    if click is None:
        return
    dialog = await ctx.dialog(KIND)
    if (click.ticket.status is not Status.DRAFT or dialog is None
            or dialog.data.get("card") != click.card.task_id):
        await ctx.reply(Text("这张确认卡片已过期，请以最新的卡片为准。"))
        return
    await _summary_action(ctx, click, dialog)


async def _summary_action(ctx: Context, click: Click, dialog: Dialog) -> None:
    shown = {"submit": "提交", "edit": "修改", "cancel": "取消"}[click.action]
    if not await settle(ctx, click, shown):
        return
    if click.action == "submit":
        await _submit(ctx, click.ticket)
    elif click.action == "cancel":
        await _cancel(ctx, click.ticket)
    else:
        await ask(dialog, "edit", ctx.now, ctx.rules.draft_idle)
        await _ask(ctx, dialog, click.ticket)


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
    await file_ticket(draft, ctx.now, ctx.local(ctx.now).strftime("%Y%m%d"), who, category)
    await close_dialog(ctx.me.id)
    if draft.status is Status.PLAN:
        await plan_cards(ctx, draft)
        await ctx.reply(Text(f"已提交，编号 {draft.number}。{draft.grade_reason}。"
                             "该隐患按重大隐患处理，已请主要负责人组织制定治理方案，"
                             f"整改责任人：{who.owner.name}。感谢您的上报！"))
        return
    await owner_cards(ctx, draft)
    await ctx.reply(Text(f"已提交，编号 {draft.number}。整改责任人：{who.owner.name}，"
                         f"整改期限：{when(draft.deadline, ctx.rules.tz)}。感谢您的上报！"))


async def _link(ctx: Context, draft: Ticket, original: Ticket) -> None:
    await link_repeat(draft, original, ctx.now)
    await close_dialog(ctx.me.id)
    f = await facts(original, ctx.rules.catalog)
    await ctx.reply(Text(f"该隐患与已登记的 {original.number}（{f.title}，整改责任人{f.owner}）"
                         "相同，已合并记录，无需重复登记。感谢您的上报！"))
    reporter = await User.get(id=draft.reporter_id)
    await ctx.send(Text(f"{original.number}（{f.title}）被{reporter.name}再次上报，"
                        f"累计{original.reports}次，请抓紧整改。"),
                   to_users=[original.owner_id or ""])
