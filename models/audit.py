"""The immutable audit trail: who did what to which record, when, and why."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tortoise import fields
from tortoise.models import Model


class AuditEvent(Model):
    id = fields.BigIntField(primary_key=True)
    at = fields.DatetimeField()
    actor = fields.CharField(max_length=64)
    action = fields.CharField(max_length=64)
    subject_type = fields.CharField(max_length=32)
    subject_id = fields.CharField(max_length=64)
    from_state = fields.CharField(max_length=32, default="")
    to_state = fields.CharField(max_length=32, default="")
    note = fields.TextField(default="")
    data: dict[str, Any] = fields.JSONField(default=dict)  # type: ignore[assignment]

    class Meta:
        table = "audit_event"
        indexes = (("subject_type", "subject_id"),)

    async def save(self, *args: Any, **kwargs: Any) -> None:
        """Audit events are written once and never changed."""
        if not self._saved_in_db:
            await super().save(*args, **kwargs)
            return
        raise PermissionError("audit events are immutable")


async def record(
    *, at: datetime, actor: str, action: str, subject_type: str, subject_id: str,
    from_state: str = "", to_state: str = "", note: str = "", data: dict[str, Any] | None = None,
) -> AuditEvent:
    return await AuditEvent.create(
        at=at, actor=actor, action=action, subject_type=subject_type, subject_id=subject_id,
        from_state=from_state, to_state=to_state, note=note, data=data or {},
    )


async def history(subject_type: str, subject_id: str) -> list[AuditEvent]:
    """Everything on record about one subject, in the order it happened."""
    return list(await AuditEvent.filter(subject_type=subject_type, subject_id=subject_id
                                         ).order_by("id"))
