"""The emergency cards' buttons: `emg:<action>:<activation>:<token>[:<answer>]` (报警, 收到,
确认启动, the review's 开始评估). The token is the activation's random secret, so a forged or
stale key changes nothing and is recorded."""

from __future__ import annotations

import secrets

from handlers.emergency import review
from handlers.emergency.acknowledge import acknowledge
from handlers.emergency.activation import confirm, picked, withdraw
from handlers.emergency.alarm import alarm_click
from handlers.emergency.speak import already, refuse
from handlers.replies import unknown_card
from handlers.router import Context, Router
from models.dialog import close_dialog
from models.emergency import ANSWERS, ActivationStatus, activation_by_id
from models.outgoing import Priority

clicks = Router()


@clicks.card_action("emg")
async def clicked(ctx: Context) -> None:
    parts = ctx.event.event_key.split(":")
    activation = None
    if len(parts) in (4, 5) and parts[2].isdigit():
        activation = await activation_by_id(int(parts[2]))
    if activation is None or not secrets.compare_digest(activation.token, parts[3]):
        await unknown_card(ctx, Priority.EMERGENCY)
        return
    action, answer = parts[1], (parts[4] if len(parts) == 5 else "")
    if action == "alarm" and answer in ("go", "no"):
        await alarm_click(ctx, activation, answer)
    elif action == "ack" and answer in ANSWERS:
        await acknowledge(ctx, activation, answer)
    elif action == "review" and not answer:
        await review.clicked(ctx, activation)
    elif action in ("go", "stop", "pick") and ctx.me.id in (activation.raised_by,
                                                            activation.commander):
        if activation.status is not ActivationStatus.CONFIRMING:
            await already(ctx, activation)
        elif action == "pick":
            await picked(ctx, activation, answer)
        elif action == "go":
            await close_dialog(ctx.me.id)
            await confirm(ctx, activation)
        else:
            await withdraw(ctx, activation)
    else:
        await refuse(ctx, activation, "这张卡片不是发给您的，无法操作。")
