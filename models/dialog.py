"""What each person's next message is expected to answer.

A dialog is a row, not a coroutine: a restart in the middle of a question loses nothing, and the
expiry job finds idle ones with an indexed query. One person has at most one dialog; starting
another (say, a reviewer asked for a 驳回 reason while drafting a report) replaces it, and the
draft ticket itself stays, to be continued later.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from typing import Any

from tortoise import fields
from tortoise.models import Model

from models.org import User


class Dialog(Model):
    user_id = fields.CharField(max_length=64, primary_key=True)
    platform = fields.CharField(max_length=16)   # where to tell them when it expires
    kind = fields.CharField(max_length=16)       # report, evidence, reject, extension, …
    step = fields.CharField(max_length=16)       # the question now asked
    ticket_id = fields.BigIntField(null=True)
    data: dict[str, Any] = fields.JSONField(default=dict)  # type: ignore[assignment]
    back: list[str] = fields.JSONField(default=list)  # type: ignore[assignment]
    asked_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "dialog"


async def open_dialog(user_id: str, platform: str, kind: str, step: str, now: datetime,
                      idle: timedelta, *, ticket_id: int | None = None,
                      data: dict[str, Any] | None = None) -> Dialog:
    await Dialog.filter(user_id=user_id).delete()
    return await Dialog.create(user_id=user_id, platform=platform, kind=kind, step=step,
                               ticket_id=ticket_id, data=data or {}, back=[], asked_at=now,
                               expires_at=now + idle)


async def ask(dialog: Dialog, step: str, now: datetime, idle: timedelta) -> None:
    """Move to the next question, remembering the last one for 返回."""
    if step != dialog.step:
        dialog.back = [*dialog.back, dialog.step][-10:]
    dialog.step = step
    dialog.asked_at = now
    dialog.expires_at = now + idle
    await dialog.save()


async def go_back(dialog: Dialog, now: datetime, idle: timedelta) -> str | None:
    """Return to the previous question (None when there is none)."""
    if not dialog.back:
        return None
    dialog.step, dialog.back = dialog.back[-1], dialog.back[:-1]
    dialog.asked_at = now
    dialog.expires_at = now + idle
    await dialog.save()
    return dialog.step


async def dialog_of(user_id: str) -> Dialog | None:
    """The person's open question as stored now (an event may have changed it since the one
    read with the sender)."""
    return await Dialog.get_or_none(user_id=user_id)


async def save_data(dialog: Dialog) -> None:
    """Keep the dialog's answers (`data`) as they are now, the question staying as asked."""
    await dialog.save()


async def forget_answer(dialog: Dialog, step: str) -> None:
    """Back at `step` (返回): its answer is forgotten so it can be given again."""
    dialog.data = {k: v for k, v in dialog.data.items() if k != step}
    await dialog.save()


async def close_dialog(user_id: str) -> None:
    await Dialog.filter(user_id=user_id).delete()


async def idle_dialogs(now: datetime, limit: int = 500) -> list[Dialog]:
    return await Dialog.filter(expires_at__lte=now).order_by("expires_at").limit(limit)


async def sender_with_dialog(user_id: str, platform: str) -> tuple[User | None, Dialog | None]:
    """An active member and their open question, with one LEFT JOIN (every event needs both).
    `user_id` is the sender's id on `platform`: the person whose id there it is (`platform_id`,
    a DingTalk staffId beside WeCom-style roster ids) or else the person of that id."""
    db = User._meta.db
    rows = await db.execute_query_dict(_sender_sql(db.capabilities.dialect),
                                       [user_id, platform])
    if not rows:
        return None, None
    row = rows[0]
    user = User._init_from_db(**{c: row[f"u_{c}"] for c in _columns(User)})
    if not user.active:
        return None, None
    if row[f"d_{Dialog._meta.db_pk_column}"] is None:
        return user, None
    return user, Dialog._init_from_db(**{c: row[f"d_{c}"] for c in _columns(Dialog)})


def _columns(model: type[Model]) -> tuple[str, ...]:
    return tuple(model._meta.fields_db_projection.values())


@functools.cache
def _sender_sql(dialect: str) -> str:
    users, dialogs = User._meta, Dialog._meta
    picked = [f'u."{c}" AS "u_{c}"' for c in _columns(User)]
    picked += [f'd."{c}" AS "d_{c}"' for c in _columns(Dialog)]
    user_key, dialog_key = users.db_pk_column, dialogs.db_pk_column
    uid, platform = ("$1", "$2") if dialect == "postgres" else ("?1", "?2")
    return (f'SELECT {", ".join(picked)} FROM "{users.db_table}" u '
            f'LEFT JOIN "{dialogs.db_table}" d ON d."{dialog_key}" = u."{user_key}" '
            f'WHERE u."{user_key}" = {uid} OR (u."platform" = {platform} '
            f'AND u."platform_id" = {uid}) ORDER BY u."platform_id" = {uid} DESC LIMIT 1')
