"""What each person's next message is expected to answer.

A dialog is a row, not a coroutine: a restart in the middle of a question loses nothing, and the
expiry job finds idle ones with an indexed query. One person has at most one dialog; starting
another (say, a reviewer asked for a 驳回 reason while drafting a report) replaces it, and the
draft ticket itself stays, to be continued later.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tortoise import fields
from tortoise.models import Model


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


async def close_dialog(user_id: str) -> None:
    await Dialog.filter(user_id=user_id).delete()


async def idle_dialogs(now: datetime, limit: int = 500) -> list[Dialog]:
    return await Dialog.filter(expires_at__lte=now).order_by("expires_at").limit(limit)
