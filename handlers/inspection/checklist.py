"""A checkpoint's checklist, as a dialog: one card per item (正常 / 异常 / 跳过, a choice's
options), or first one card for the plain 正常/异常 items together; readings typed, an
out-of-range reading questioned once; a required photo. An 异常 asks for a photo and a few words.
Each answer is kept as it is given, so a restart or a pause loses nothing: scanning the
checkpoint again goes on from the first item not answered.

When every item is answered, each 异常 becomes a hazard draft already filled (area, category,
description, reading) and the patroller confirms it with the report's summary card; an 异常
whose ticket from an earlier round is still open is linked to it instead."""

from __future__ import annotations

import re

from handlers.dialog import Dialog, PhotoStep, Reask, Retry, Step
from handlers.hazard.report import ReportDialog
from handlers.replies import photo_refused
from handlers.router import Context
from models.dialog import Dialog as DialogRow
from models.dialog import close_dialog
from models.hazard import new_draft, save_draft
from models.inspection.rounds import Round, RoundStatus, finish_round, round_by_id
from models.inspection.sites import (
    Checkpoint,
    Item,
    ItemKind,
    checklist_by_code,
    checkpoint_by_code,
)
from models.inspection.visits import (
    Given,
    Result,
    Visit,
    answers_of,
    finish_visit,
    finished_checkpoints,
    link_answer,
    open_finding,
    record_answer,
    visit_by_id,
)
from models.outgoing import Button, Card, Text

NOTE_CHARS = 100
READING = re.compile(r"([-+]?\d+(?:\.\d+)?)\s*([^\d\s].*)?")
OK_WORDS = ("正常", "1", "无异常", "合格")
ABNORMAL_WORDS = ("异常", "2", "不正常", "有问题")


def item_key(visit: int, item: str, choice: str) -> str:
    return f"insp:{visit}:{item}:{choice}"


class ChecklistDialog(Dialog[Visit]):
    """The items of one visit's checklist, then the findings filed."""

    kind = "checklist"

    # --- what is asked ------------------------------------------------------------------------

    @property
    def items(self) -> list[Item]:
        return [Item.from_json(i) for i in self.data["items"]]

    @property
    def current(self) -> Item:
        return next(i for i in self.items if i.id == self.data["at"])

    def _plain(self) -> list[Item]:
        """The 正常/异常 items not answered yet, asked together when there are a few."""
        done = self.data["done"]
        return [i for i in self.items if i.kind is ItemKind.CHECK and i.id not in done]

    def next_step(self) -> str | None:
        """A finding's photo and words, a skip's reason, the plain items together (once), then
        the first item not answered, which becomes the open one (`at`)."""
        data = self.data
        if "finding" in data:
            return "remark" if "shot" in data else "shot"
        if "skipping" in data:
            return "reason"
        plain = self._plain()
        if ("together" not in data and len(plain) >= 2
                and len(plain) <= self.ctx.rules.inspection.compact_max):
            return "together"
        left = [i for i in self.items if i.id not in data["done"]]
        if not left:
            return None
        self.remember(at=left[0].id)
        return "item"

    async def _card(self, task: str, title: str, body: str, buttons: tuple[Button, ...],
                    fields: tuple[tuple[str, str], ...] = ()) -> None:
        """A card question, its lead (已到达…, 已记录异常) the line under its title: one
        message a step, where a scan is most of a patrol's traffic."""
        await self.say(Card(task_id=f"insp-{self.subject.id}-{task}-{self.ctx.event_id}",
                            title=title, description=self.lead, fields=fields, body=body,
                            buttons=buttons))

    async def _ask_together(self) -> None:
        visit = self.subject.id
        await self._card("all", self.data["title"], "以下项目是否全部正常？有异常请选“逐项检查”。",
                         (Button("全部正常", item_key(visit, "*", "all")),
                          Button("逐项检查", item_key(visit, "*", "each"), style=2)),
                         tuple((str(n), i.text) for n, i in enumerate(self._plain(), 1)))

    async def _ask_item(self) -> str | None:
        item, visit = self.current, self.subject.id
        position = f"（{self.items.index(item) + 1}/{len(self.items)}）"
        if item.kind is ItemKind.READING:
            return (f"{position}请输入{item.text}读数（单位{item.unit}，正常范围"
                    f"{item.range_text}）。无法读取请回复“跳过”。")
        if item.kind is ItemKind.PHOTO:
            return f"{position}请拍照：{item.text}。无法拍照请回复“跳过”。"
        buttons = ((Button("正常", item_key(visit, item.id, "ok")),
                    Button("异常", item_key(visit, item.id, "abnormal"), style=2))
                   if item.kind is ItemKind.CHECK else
                   tuple(Button(o, item_key(visit, item.id, f"o{n}"),
                                style=2 if o in item.abnormal else 1)
                         for n, o in enumerate(item.options, 1)))
        await self._card(item.id, f"{self.data['title']}{position}", item.text,
                         (*buttons, Button("跳过", item_key(visit, item.id, "skip"), style=3)))
        return None

    async def _ask_shot(self) -> str:
        return "请拍一张异常部位的照片发送过来。"

    async def _ask_remark(self) -> str:
        return "请用一句话说明异常情况（如：防护罩螺栓松脱）。"

    async def _ask_reason(self) -> str:
        return f"请说明跳过“{self.current.text}”的原因（如：设备停机检修）。"

    # --- how answers parse --------------------------------------------------------------------

    async def _together(self, text: str) -> None:
        if text in ("全部正常", "1", "正常"):
            for item in self._plain():
                await self._keep(Given(item.id, Result.OK, shown="正常"))
            self.remember(together="all")
        elif text in ("逐项检查", "2"):
            self.remember(together="each")
        else:
            raise Retry("请点击“全部正常”或“逐项检查”，也可以回复 1 或 2。")
        await self.advance()

    async def _item(self, text: str) -> None:
        item = self.current
        # "3" is 跳过 beside 正常/异常; a reading of 3 or a third option is itself.
        if text == "跳过" or (text == "3" and item.kind is ItemKind.CHECK):
            self.remember(skipping=item.id)
            await self.advance()
            return
        if item.kind is ItemKind.READING:
            await self._reading(item, text)
        elif item.kind is ItemKind.PHOTO:
            raise Retry(f"请发送照片：{item.text}。无法拍照请回复“跳过”。")
        elif item.kind is ItemKind.CHOICE:
            chosen = next((o for n, o in enumerate(item.options, 1) if text in (o, str(n))), None)
            if chosen is None:
                raise Reask(f"没有“{text[:20]}”这个选项。")
            if chosen in item.abnormal:
                self._found(Given(item.id, Result.ABNORMAL, shown=chosen))
            else:
                await self._keep(Given(item.id, Result.OK, shown=chosen))
        elif text in OK_WORDS:
            await self._keep(Given(item.id, Result.OK, shown="正常"))
        elif text in ABNORMAL_WORDS:
            self._found(Given(item.id, Result.ABNORMAL, shown="异常"))
        else:
            raise Retry("请点击卡片上的“正常”“异常”或“跳过”，也可以回复 1、2、3。")
        await self.advance()

    async def _reading(self, item: Item, text: str) -> None:
        found = READING.fullmatch(text.replace("，", ",").strip())
        if found is None:
            raise Retry(f"请回复数字读数，例如 {_example(item)}（单位{item.unit}）。")
        value, unit = float(found.group(1)), (found.group(2) or "").strip()
        if unit and unit.lower() != item.unit.lower():
            raise Retry(f"{item.text}的单位是{item.unit}，请按{item.unit}填写读数，"
                        f"例如 {_example(item)}。")
        shown = f"{value:g} {item.unit}"
        if item.in_range(value):
            self.remember(questioned=None)
            await self._keep(Given(item.id, Result.OK, value=value, shown=shown))
            return
        if self.data.get("questioned") != value:
            self.remember(questioned=value)
            await self.keep_open()
            raise Retry(f"读数 {shown} 超出正常范围（{item.range_text}），请核实后重新输入；"
                        "如确认无误，请再次发送该读数。")
        self.remember(questioned=None)
        self._found(Given(item.id, Result.ABNORMAL, value=value, shown=shown, out_of_range=True))

    async def _remark(self, text: str) -> None:
        if len(text) > NOTE_CHARS:
            raise Retry(f"说明请控制在{NOTE_CHARS}字以内。")
        finding = dict(self.data["finding"])
        await self._keep(Given(**{**finding, "result": Result.ABNORMAL, "note": text,
                                  "photo": self.data["shot"]}))
        self._forget("finding", "shot")
        await self.advance("已记录异常。")

    async def _reason(self, text: str) -> None:
        if len(text) > NOTE_CHARS:
            raise Retry(f"原因请控制在{NOTE_CHARS}字以内。")
        await self._keep(Given(self.data["skipping"], Result.SKIPPED, shown="跳过", note=text))
        self._forget("skipping")
        await self.advance()

    together = Step(_ask_together, _together)
    item = Step(_ask_item, _item)
    shot = PhotoStep(_ask_shot, "请发送异常部位的照片，不是文字。")
    remark = Step(_ask_remark, _remark)
    reason = Step(_ask_reason, _reason)

    # --- keeping answers ----------------------------------------------------------------------

    def _found(self, given: Given) -> None:
        """An 异常: its photo and few words are asked before it is kept."""
        self.remember(finding={"item": given.item, "value": given.value, "shown": given.shown,
                               "out_of_range": given.out_of_range})

    async def _keep(self, given: Given) -> None:
        await record_answer(self.subject, given, self.ctx.now)
        self.remember(done=[*self.data["done"], given.item])

    def _forget(self, *keys: str) -> None:
        self.row.data = {k: v for k, v in self.row.data.items() if k not in keys}

    async def photo(self) -> None:
        if self.step == "item" and self.current.kind is ItemKind.PHOTO:
            if not await photo_refused(self.ctx):
                await self._keep(Given(self.current.id, Result.OK, shown="已拍照",
                                       photo=self.ctx.event.media))
                await self.advance("已收到照片。")
            return
        await super().photo()

    # --- the dialog's ends --------------------------------------------------------------------

    @classmethod
    async def load(cls, ctx: Context, row: DialogRow) -> Visit | None:
        visit = await visit_by_id(int(row.data.get("visit", 0)))
        return visit if visit is not None and visit.finished_at is None else None

    @classmethod
    async def expire(cls, ctx: Context, row: DialogRow) -> None:
        await close_dialog(row.user_id)
        await ctx.reply(Text(f"{row.data.get('title', '巡检点')}的检查已暂停，已答的项目已保存。"
                             "再次扫码该巡检点可继续。"))

    async def cancel(self) -> None:
        await self.close()
        await self.say(Text("已暂停本巡检点的检查，已答的项目已保存。再次扫码该巡检点可继续。"))

    async def finish(self) -> None:
        await self.close()
        await conclude(self.ctx, self.subject)


def _example(item: Item) -> str:
    if item.low is not None and item.high is not None:
        return f"{(item.low + item.high) / 2:g}"
    return f"{item.low if item.low is not None else item.high:g}"


async def start_checklist(ctx: Context, visit: Visit, checkpoint: Checkpoint,
                          items: list[Item], title: str, lead: str) -> None:
    """Open the checklist at its first item not answered (a visit resumed keeps its answers)."""
    done = [a.item for a in await answers_of(visit.id)]
    row = await ChecklistDialog.open(ctx, "item", data={
        "visit": visit.id, "checkpoint": checkpoint.code, "title": title,
        "items": [i.to_json() for i in items], "done": done,
        **({"together": "resumed"} if done else {})})
    dialog = ChecklistDialog(ctx, row, visit)
    await dialog.advance(lead)


async def conclude(ctx: Context, visit: Visit) -> None:
    """The checklist is answered: the visit finished, the round moved on, the findings filed."""
    await finish_visit(visit, ctx.now)
    answers = await answers_of(visit.id)
    checkpoint = await checkpoint_by_code(visit.checkpoint_id)
    checklist = await checklist_by_code(checkpoint.checklist_id) if checkpoint else None
    if checkpoint is None or checklist is None:
        return
    items = {i.id: i for i in checklist.item_list()}
    counts = {r: sum(a.result is r for a in answers) for r in Result}
    lines = [f"{checkpoint.code} {checkpoint.name} 检查完成：" + "，".join(
        f"{r.label}{n}项" for r, n in counts.items() if n) + "。"]
    if visit.round_id is not None:
        lines.append(await _progress(ctx, await round_by_id(visit.round_id)))
    drafts = []
    for answer in (a for a in answers if a.result is Result.ABNORMAL and a.item in items):
        item = items[answer.item]
        earlier = await open_finding(checkpoint.code, answer.item)
        where = f"{checkpoint.code} {checkpoint.name}：{item.text}（{answer.shown}）"
        if earlier is not None:
            await link_answer(answer, earlier.id, where, ctx.now, again=True)
            lines.append(f"异常“{item.text}”与未闭环的隐患 {earlier.label} 相同，已关联，"
                         "不重复登记。")
            continue
        draft = await new_draft(ctx.me.id, [answer.photo] if answer.photo else [], ctx.now)
        draft.area_id = checkpoint.area_id
        draft.category = item.category or checklist.category
        draft.description = _describe(checkpoint, item, answer.shown, answer.note)
        await save_draft(draft, ctx.now)
        await link_answer(answer, draft.id, where, ctx.now, again=False)
        drafts.append(draft)
    await ctx.reply(Text("\n".join(lines)))
    if not drafts:
        return
    more = (f"另有{len(drafts) - 1}项异常已保存为草稿，提交后回复“继续上报”逐项确认。"
            if len(drafts) > 1 else "")
    first = drafts[-1]          # 继续上报 takes the newest draft, so the rest follow in order
    row = await ReportDialog.open(ctx, "confirm", ticket_id=first.id)
    await ReportDialog(ctx, row, first).advance(f"发现异常，已为您生成隐患上报，请确认。{more}")


def _describe(checkpoint: Checkpoint, item: Item, shown: str, note: str) -> str:
    if item.kind is ItemKind.READING:
        what = f"{item.text}读数{shown}，超出正常范围（{item.range_text}）"
    elif item.kind is ItemKind.CHOICE:
        what = f"{item.text}：{shown}"
    else:
        what = f"“{item.text}”异常"
    return f"巡检发现（{checkpoint.code} {checkpoint.name}）：{what}。{note}".strip()


async def _progress(ctx: Context, round_: Round) -> str:
    """Where the round stands after this checkpoint: the next one, or done."""
    reached = await finished_checkpoints(round_.id)
    left = [c for c in round_.checkpoints if c not in reached]
    if left:
        upcoming = await checkpoint_by_code(left[0])
        return (f"“{round_.route_name}”已完成{len(reached)}/{len(round_.checkpoints)}个"
                f"巡检点，下一个：{left[0]} {upcoming.name if upcoming else ''}。")
    status = await finish_round(round_.id, ctx.now)
    minutes = max(1, round((ctx.now - min(reached.values())).total_seconds() / 60))
    late = "（已过巡检时段，记为逾期完成）" if status is RoundStatus.LATE else ""
    return (f"“{round_.route_name}”{len(round_.checkpoints)}个巡检点已全部完成{late}，"
            f"用时约{minutes}分钟。辛苦了！")
