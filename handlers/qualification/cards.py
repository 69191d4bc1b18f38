"""The module's card buttons: `qual:<action>:<id>:<token>[:<answer>]` — a check's 通知安全员
(notify), its proposed 重大 ticket (major / dismiss), an admission (admit, yes / no). The token is
the row's random secret, so a forged or stale key changes nothing and is recorded."""

from __future__ import annotations

import secrets

from handlers.qualification.check import notify_clicked, proposal_clicked
from handlers.qualification.contractors import admission_clicked
from handlers.replies import unknown_card
from handlers.router import Context, Router
from models.people.checks import check_by_id
from models.people.profiles import admission_by_id

clicks = Router()


@clicks.card_action("qual")
async def clicked(ctx: Context) -> None:
    parts = ctx.event.event_key.split(":")
    if len(parts) < 4 or not parts[2].isdigit():
        await unknown_card(ctx)
        return
    action, row_id, token = parts[1], int(parts[2]), parts[3]
    answer = parts[4] if len(parts) == 5 else ""
    if action == "admit" and answer in ("yes", "no"):
        admission = await admission_by_id(row_id)
        if admission is not None and secrets.compare_digest(admission.token, token):
            await admission_clicked(ctx, admission, answer == "yes")
            return
    elif action in ("notify", "major", "dismiss") and not answer:
        check = await check_by_id(row_id)
        if check is not None and secrets.compare_digest(check.token, token):
            if action == "notify":
                await notify_clicked(ctx, check)
            else:
                await proposal_clicked(ctx, check, action == "major")
            return
    await unknown_card(ctx)
