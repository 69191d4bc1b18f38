"""收到 / 无法到场, by card or typed: each responder's answer on record, their card greyed out,
a deputy called for whoever cannot come, and the commander's board brought up to date."""

from __future__ import annotations

from handlers.emergency.board import board_soon
from handlers.emergency.speak import refuse, say
from handlers.router import Context, Router
from models.emergency import (
    ANSWERS,
    Activation,
    ActivationStatus,
    answer_call,
    call,
    last_call_waiting,
    plan_of,
    responder,
)
from models.emergency import audit as audit_activation
from models.inbound import InboundKind
from models.outgoing import CardUpdate, Priority, Text

ACK_WORDS = {"收到": "ok", "无法到场": "no", "不能到场": "no"}
router = Router()

@router.on(lambda e: e.kind is InboundKind.TEXT and e.text.strip() in ACK_WORDS)
async def typed_answer(ctx: Context) -> None:
    waiting = await last_call_waiting(ctx.me.id)
    if waiting is None:
        await say(ctx, "您目前没有需要确认的应急通知。")
        return
    await acknowledge(ctx, waiting[1], ACK_WORDS[ctx.event.text.strip()])

async def acknowledge(ctx: Context, activation: Activation, answer: str) -> None:
    row = await responder(activation, ctx.me.id)
    if row is None or (ctx.event.task_id and row.task_id != ctx.event.task_id):
        await refuse(ctx, activation, "这张卡片不是发给您的，无法操作。")
        return
    word = ANSWERS[answer]
    if row.answer and not row.late:
        await say(ctx, f"您已于{ctx.local(row.answered_at or ctx.now):%H:%M:%S}回复“"
                        f"{row.answer}”，无需重复确认。")
        return
    if activation.status is not ActivationStatus.ACTIVE:
        # After the close: kept on record as late, the board and summary stay as they were.
        await answer_call(row, word, ctx.now, late=True)
        await say(ctx, "该应急响应已结束，您的回复已记录。")
        return
    if not await answer_call(row, word, ctx.now):
        return
    await audit_activation(activation, ctx.me.id, f"ack_{answer}", ctx.now,
                           from_state=activation.status.value)
    # A pressed card is answered by greying out that person's card alone; a typed answer has
    # no card to grey, so it gets a line. At ten thousand answers, one message each, and behind
    # the cards and the board (urgent, not emergency).
    at = ctx.local(ctx.now)
    if ctx.event.response_code:
        await ctx.send(CardUpdate(ctx.event.response_code, f"已回复{word} {at:%H:%M:%S}",
                                  users=(ctx.me.id,)), priority=Priority.URGENT)
    else:
        await ctx.send(Text(f"已记录：{word}（{at:%H:%M:%S}）。" + (
            "请按预案行动，注意安全。" if answer == "ok" else "指挥会安排他人。")),
            to_users=[ctx.me.id], priority=Priority.URGENT)
    plan = await plan_of(activation)
    if answer == "no":
        level = plan.level(activation.level)
        deputy = level.deputy_of(ctx.me.id) if level else ""
        if deputy:
            await call(activation, plan, [deputy], ctx.now, ctx.rules.home,
                       ctx.rules.emergency.remind_every, deputy_for={deputy: ctx.me.id})
    await board_soon(ctx, activation, plan)
