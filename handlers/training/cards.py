"""The module's card buttons: a quiz's options, `train:quiz:<attempt>:<position>:<token>:<letter>`,
and a practical check's 合格 / 不合格, `train:prac:<check>:<token>:<yes|no>`. The token is the
row's random secret, so a forged key changes nothing and is recorded."""

from __future__ import annotations

import secrets

from handlers.replies import unknown_card
from handlers.router import Context, Router
from handlers.training.learn import take
from handlers.training.practical import practical_clicked
from models.org import user_names
from models.outgoing import Text
from models.training.courses import LETTERS, course_by_code
from models.training.learning import attempt_by_id
from models.training.practical import practical_by_id

clicks = Router()


@clicks.card_action("train")
async def clicked(ctx: Context) -> None:
    parts = ctx.event.event_key.split(":")
    if len(parts) == 6 and parts[1] == "quiz" and parts[2].isdigit() and parts[3].isdigit():
        await _quiz(ctx, int(parts[2]), int(parts[3]), parts[4], parts[5])
        return
    if len(parts) == 5 and parts[1] == "prac" and parts[2].isdigit() and parts[4] in ("yes",
                                                                                      "no"):
        check = await practical_by_id(int(parts[2]))
        if check is not None and secrets.compare_digest(check.token, parts[3]):
            await practical_clicked(ctx, check, parts[4] == "yes")
            return
    await unknown_card(ctx)


async def _quiz(ctx: Context, attempt_id: int, position: int, token: str, letter: str) -> None:
    attempt = await attempt_by_id(attempt_id)
    if (attempt is None or not secrets.compare_digest(attempt.token, token)
            or letter not in LETTERS or position >= attempt.size):
        await unknown_card(ctx)
        return
    if attempt.person_id != ctx.me.id:
        names = await user_names([attempt.person_id])
        await ctx.reply(Text(f"这是{names.get(attempt.person_id, '他人')}的测验题，"
                             "请在自己收到的题目中作答。"))
        return
    spec = await course_by_code(attempt.course)
    if attempt.finished_at is not None or attempt.at != position or spec is None:
        await ctx.reply(Text("该题已作答，请看最新的题目。"))
        return
    await take(ctx, spec, attempt, position, letter)
