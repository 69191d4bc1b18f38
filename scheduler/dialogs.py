"""Idle questions. A dialog nobody answered within its time becomes an `expired` inbox event for
that person: the handlers decide what to say and do, in order with the person's own messages, so
an answer that arrives at the same moment is never lost to the expiry."""

from __future__ import annotations

from datetime import datetime

from models.dialog import idle_dialogs
from models.inbound import Inbound, InboundKind
from models.inbox import inbox_put


async def expire_dialogs(now: datetime) -> int:
    """Queue one `expired` event per idle question (a tick repeated finds the same keys)."""
    queued = 0
    for dialog in await idle_dialogs(now):
        asked = dialog.asked_at.isoformat()   # names the question, so a later one is not hit
        event = Inbound(platform=dialog.platform, user_id=dialog.user_id,
                        kind=InboundKind.EXPIRED, event_key=asked, raw_type="dialog_expired",
                        dedup_key=f"expired:{dialog.user_id}:{asked}")
        queued += await inbox_put(event, now)
    return queued
