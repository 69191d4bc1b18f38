"""Emergency plans (应急预案), their activations and each responder's acknowledgement.

A plan is configuration loaded into the database (bot/plans.py). An activation moves
`alarm` (一键报警, waiting for the duty commander) or `confirming` (a commander's 启动预案, waiting
for 确认启动) → `active` → `closed`; an alarm can be `dismissed`, and a second activation of the
same plan and area within minutes is `joined` to the first. Every move is a compare-and-set on
`status` and is audited. Responders are rows, so who was called, when they answered and who is
still silent survive a restart and are read by the scheduler's reminders.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model

from models.audit import record


class PlanKind(StrEnum):
    GENERAL = "综合应急预案"
    SPECIAL = "专项应急预案"
    ONSITE = "现场处置方案"


@dataclass(frozen=True)
class Level:
    """A response level and who it calls: everyone with `roles`, and `people` by id; a
    responder who stays silent is replaced by their deputy."""

    name: str                          # 一级 is the highest
    roles: tuple[str, ...] = ()
    people: tuple[str, ...] = ()
    deputies: tuple[tuple[str, str], ...] = ()   # (person, deputy)

    def deputy_of(self, person: str) -> str:
        return dict(self.deputies).get(person, "")


@dataclass(frozen=True)
class Resource:
    what: str
    where: str
    keeper: str = ""
    phone: str = ""
    area: str = ""                     # area code, for "nearest"


class Plan(Model):
    code = fields.CharField(max_length=32, primary_key=True)
    name = fields.CharField(max_length=100)
    kind = fields.CharEnumField(PlanKind, max_length=8)
    triggers: list[str] = fields.JSONField(default=list)  # type: ignore[assignment]
    levels: list[dict[str, Any]] = fields.JSONField(default=list)  # type: ignore[assignment]
    groups: list[str] = fields.JSONField(default=list)  # type: ignore[assignment]
    steps: list[str] = fields.JSONField(default=list)  # type: ignore[assignment]
    resources: list[dict[str, str]] = fields.JSONField(default=list)  # type: ignore[assignment]
    report_level = fields.CharField(max_length=8, default="")  # 事故上报 countdown at or above
    active = fields.BooleanField(default=True)
    loaded_at = fields.DatetimeField()

    class Meta:
        table = "emergency_plan"

    def level(self, name: str) -> Level | None:
        for raw in self.levels:
            if raw["name"] == name:
                return Level(raw["name"], tuple(raw.get("roles", ())),
                             tuple(raw.get("people", ())),
                             tuple((a, b) for a, b in raw.get("deputies", ())))
        return None

    @property
    def level_names(self) -> list[str]:
        return [raw["name"] for raw in self.levels]

    def at_or_above(self, level: str, threshold: str) -> bool:
        """Levels are listed highest first (一级, 二级, …)."""
        names = self.level_names
        return threshold in names and level in names and \
            names.index(level) <= names.index(threshold)

    @property
    def resource_list(self) -> list[Resource]:
        return [Resource(**raw) for raw in self.resources]


class ActivationStatus(StrEnum):
    ALARM = "alarm"              # 一键报警: the duty commander confirms or dismisses
    CONFIRMING = "confirming"    # waiting for 确认启动
    ACTIVE = "active"
    CLOSED = "closed"
    DISMISSED = "dismissed"      # an alarm found false, or a confirmation withdrawn
    JOINED = "joined"            # the same plan and area was already active


class Activation(Model):
    id = fields.BigIntField(primary_key=True)
    plan: fields.ForeignKeyNullableRelation[Plan] = fields.ForeignKeyField(
        "models.Plan", related_name="activations", null=True, on_delete=fields.RESTRICT)
    level = fields.CharField(max_length=8, default="")
    area_id = fields.CharField(max_length=32, null=True)
    drill = fields.BooleanField(default=False)
    status = fields.CharEnumField(ActivationStatus, max_length=10)
    token = fields.CharField(max_length=32)            # the opaque part of its cards' keys
    raised_by = fields.CharField(max_length=64)
    commander = fields.CharField(max_length=64, default="")
    note = fields.TextField(default="")
    joined_to = fields.BigIntField(null=True)
    created_at = fields.DatetimeField()
    activated_at = fields.DatetimeField(null=True)
    closed_at = fields.DatetimeField(null=True)
    closed_by = fields.CharField(max_length=64, default="")
    # 事故上报: due one hour after a real activation at or above the plan's report level.
    report_due_at = fields.DatetimeField(null=True)
    reported_at = fields.DatetimeField(null=True)
    report_reminders = fields.SmallIntField(default=0)
    review_due_at = fields.DatetimeField(null=True)    # a drill's 评估 48 h after it closed
    review_sent = fields.BooleanField(default=False)
    board_due_at = fields.DatetimeField(null=True)     # answers arrived since the last board
    board_sent_at = fields.DatetimeField(null=True)
    plan_id: str | None

    class Meta:
        table = "emergency_activation"
        indexes = (("status", "plan_id", "area_id"), ("status", "board_due_at"),
                   ("status", "report_due_at"), ("review_sent", "review_due_at"))

    @property
    def label(self) -> str:
        return ("【演练】" if self.drill else "") + f"应急{self.id}"


class Responder(Model):
    """One person called by an activation: their card, their answer, the reminders sent."""

    id = fields.BigIntField(primary_key=True)
    activation: fields.ForeignKeyRelation[Activation] = fields.ForeignKeyField(
        "models.Activation", related_name="responders", on_delete=fields.CASCADE)
    user_id = fields.CharField(max_length=64)
    deputy_for = fields.CharField(max_length=64, default="")
    task_id = fields.CharField(max_length=64)          # the card they got
    notified_at = fields.DatetimeField()
    answer = fields.CharField(max_length=8, default="")   # 收到 / 无法到场
    answered_at = fields.DatetimeField(null=True)
    late = fields.BooleanField(default=False)          # answered after the close
    reminders = fields.SmallIntField(default=0)
    next_remind_at = fields.DatetimeField(null=True)   # null once answered or handed over
    deputy_called = fields.BooleanField(default=False)
    activation_id: int

    class Meta:
        table = "emergency_responder"
        unique_together = (("activation", "user_id"),)
        indexes = (("next_remind_at",), ("task_id",))


async def audit(activation: Activation, actor: str, action: str, now: datetime,
                from_state: str = "", note: str = "") -> None:
    await record(at=now, actor=actor, action=action, subject_type="activation",
                 subject_id=str(activation.id), from_state=from_state,
                 to_state=activation.status.value, note=note)


async def move(activation: Activation, frm: ActivationStatus | tuple[ActivationStatus, ...],
               to: ActivationStatus, actor: str, action: str, now: datetime, note: str = "",
               **changes: Any) -> bool:
    """Compare-and-set on status; False when someone else moved it first."""
    allowed = (frm,) if isinstance(frm, ActivationStatus) else frm
    won = await Activation.filter(id=activation.id, status__in=allowed).update(
        status=to, **changes)
    if not won:
        return False
    before = activation.status.value
    await activation.refresh_from_db()
    await audit(activation, actor, action, now, from_state=before, note=note)
    return True
