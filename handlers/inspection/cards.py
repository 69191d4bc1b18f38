"""The checklist's buttons, `insp:<visit>:<item>:<choice>`: taken as the typed answer they
stand for, by the visit's own patroller, while that item is the open question. A second press,
or a press on an old card, changes nothing and says so."""

from __future__ import annotations

from handlers.inspection.checklist import ChecklistDialog
from handlers.replies import unknown_card
from handlers.router import Context, Router
from models.inspection.sites import Item
from models.inspection.visits import visit_by_id
from models.org import user_names
from models.outgoing import CardUpdate, Text

clicks = Router()
WORDS = {"ok": "正常", "abnormal": "异常", "skip": "跳过", "all": "全部正常", "each": "逐项检查"}


@clicks.card_action("insp")
async def clicked(ctx: Context) -> None:
    parts = ctx.event.event_key.split(":")
    visit = (await visit_by_id(int(parts[1])) if len(parts) == 4 and parts[1].isdigit()
             else None)
    if visit is None:
        await unknown_card(ctx)
        return
    if visit.by != ctx.me.id:
        names = await user_names([visit.by])
        await ctx.reply(Text(f"这是{names.get(visit.by, '他人')}的巡检记录，请在自己收到的卡片上"
                             "操作。"))
        return
    item, choice = parts[2], parts[3]
    row = await ctx.dialog(ChecklistDialog.kind)
    if row is None or row.data.get("visit") != visit.id:
        await ctx.reply(Text("该项已记录，无需重复操作。" if visit.finished_at is not None
                             else "这张卡片已过期。再次扫码该巡检点可继续检查。"))
        return
    dialog = ChecklistDialog(ctx, row, visit)
    asked = {"together": "*", "item": row.data.get("at")}.get(row.step)
    if asked != item:
        answered = item == "*" or item in row.data["done"]
        await ctx.reply(Text("该项已记录，无需重复操作。" if answered
                             else "这张卡片已过期，请以最新的卡片为准。"))
        return
    word = WORDS.get(choice) or _option(dialog.current, choice)
    if word is None:
        await unknown_card(ctx)
        return
    if ctx.event.response_code:
        await ctx.send(CardUpdate(ctx.event.response_code, f"已选择：{word}"))
    await dialog.answer(word)


def _option(item: Item, choice: str) -> str | None:
    if choice.startswith("o") and choice[1:].isdigit() and 0 < int(choice[1:]) <= len(
            item.options):
        return item.options[int(choice[1:]) - 1]
    return None
