"""The local web chat's conversation log: what each person sent, what the bot sent them, and
card updates, in order.

The log is append-only per person, so a page (or a socket in another process than the outbox
dispatcher) catches up by asking for the lines after the last id it has. A card line carries a
single-use response code, as WeCom's cards do; a card update is a line of its own, appended for
everyone who received that card's task id.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from tortoise import fields
from tortoise.exceptions import IntegrityError
from tortoise.models import Model

from models import transaction

HISTORY_LIMIT = 200      # lines a freshly opened page gets
CARD_UPDATE = "card_update"


class WebChatLine(Model):
    id = fields.BigIntField(primary_key=True)
    user_id = fields.CharField(max_length=64)
    key = fields.CharField(max_length=200)       # inbox dedup key or outbox key: written once
    from_bot = fields.BooleanField()
    kind = fields.CharField(max_length=16)       # an outgoing message type, or card_update
    payload: dict[str, Any] = fields.JSONField()  # type: ignore[assignment]
    task_id = fields.CharField(max_length=128, default="")
    response_code = fields.CharField(max_length=64, null=True, unique=True)
    code_used = fields.BooleanField(default=False)
    media = fields.CharField(max_length=64, default="", db_default="")  # photo or file shown
    created_at = fields.DatetimeField()

    class Meta:
        table = "webchat_line"
        unique_together = (("user_id", "key"),)
        indexes = (("user_id", "id"), ("task_id",), ("user_id", "media"))

    def to_json(self) -> dict[str, Any]:
        """What the page sees; the code is the person's own, as WeCom gives it in the click."""
        return {"id": self.id, "from_bot": self.from_bot, "kind": self.kind,
                "payload": self.payload, "task_id": self.task_id,
                "response_code": self.response_code or "",
                "at": self.created_at.isoformat()}


async def add_line(user_id: str, key: str, *, from_bot: bool, kind: str,
                   payload: dict[str, Any], now: datetime, task_id: str = "") -> bool:
    """Append a line once per (person, key); False when it was written before (a repeat).

    A photo's or file's hash goes in `media` too: the media route shows a file only to the
    people whose log holds it."""
    code = secrets.token_urlsafe(18) if kind == "card" else None
    try:
        await WebChatLine.create(user_id=user_id, key=key, from_bot=from_bot, kind=kind,
                                 payload=payload, task_id=task_id, response_code=code,
                                 media=str(payload.get("media") or ""), created_at=now)
    except IntegrityError:
        return False
    return True


async def lines_after(user_id: str, after: int) -> list[WebChatLine]:
    """A person's lines after `after`; with 0, the latest HISTORY_LIMIT of them."""
    if after > 0:
        return await WebChatLine.filter(user_id=user_id, id__gt=after).order_by("id")
    latest = await (WebChatLine.filter(user_id=user_id).order_by("-id").limit(HISTORY_LIMIT))
    return latest[::-1]


async def open_card(user_id: str, response_code: str) -> WebChatLine | None:
    """The card this person was given under `response_code`, unless it was updated since: an
    updated WeCom card has no buttons left to click."""
    card = await WebChatLine.get_or_none(user_id=user_id, response_code=response_code,
                                         kind="card")
    if card is None or await WebChatLine.exists(user_id=user_id, task_id=card.task_id,
                                                 kind=CARD_UPDATE):
        return None
    return card


async def close_card(key: str, response_code: str, replace_text: str, now: datetime,
                     only: Sequence[str] = ()) -> list[str] | None:
    """Grey out a card for everyone who received its task id (or only for `only`); the code
    works once.

    Returns who was told, or None when the code is unknown or was used before. The code is
    spent by a compare-and-set update, so two updates racing on one code cannot both win.
    """
    async with transaction():
        card = await WebChatLine.get_or_none(response_code=response_code, kind="card")
        if card is None:
            return None
        if not await WebChatLine.filter(id=card.id, code_used=False).update(code_used=True):
            return None
        users = [str(u) for u in await WebChatLine.filter(task_id=card.task_id, kind="card")
                 .distinct().values_list("user_id", flat=True) if not only or u in only]
        payload = {"task_id": card.task_id, "replace_text": replace_text}
        for user in users:
            await add_line(user, key, from_bot=True, kind=CARD_UPDATE, payload=payload,
                           now=now, task_id=card.task_id)
    return users
