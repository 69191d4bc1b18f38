"""Emergency plans (应急预案), their activations and each responder's acknowledgement.

A plan is configuration loaded into the database (bot/plans.py). An activation moves
`alarm` (一键报警, waiting for the duty commander) or `confirming` (a commander's 启动预案, waiting
for 确认启动) → `active` → `closed`; an alarm can be `dismissed`, and a second activation of the
same plan and area within minutes is `joined` to the first. Every move is a compare-and-set on
`status` and is audited. Responders are rows, so who was called, when they answered and who is
still silent survive a restart and are read by the scheduler's reminders.
"""

from __future__ import annotations

import secrets
import statistics
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from tortoise import fields
from tortoise.expressions import F
from tortoise.models import Model
from tortoise.queryset import QuerySet

from models.audit import record
from models.org import Area, Role, User, people_with, user_names
from models.outbox import DeliveryStatus, OutboxDelivery, OutboxMessage, Queued, enqueue_many
from models.outgoing import Button, Card, Image, Markdown, Priority, fit
from models.resources import resource_lines
from models.sql import insert_many

CARD_CHUNK = 1000      # WeCom's message/send takes 1,000 members; a card's task id is single-use
ANSWERS = {"ok": "收到", "no": "无法到场"}
LISTED = 20            # names shown per line of a board before "等N人"


@dataclass(frozen=True)
class EmergencyPolicy:
    """Timing from configuration ([emergency] settings)."""

    remind_every: timedelta = timedelta(minutes=2)
    reminders_before_deputy: int = 2
    join_within: timedelta = timedelta(minutes=10)
    board_every: timedelta = timedelta(seconds=30)
    report_within: timedelta = timedelta(hours=1)
    review_after: timedelta = timedelta(hours=48)


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


class Plan(Model):
    code = fields.CharField(max_length=32, primary_key=True)
    name = fields.CharField(max_length=100)
    kind = fields.CharEnumField(PlanKind, max_length=8)
    triggers: list[str] = fields.JSONField(default=list)  # type: ignore[assignment]
    levels: list[dict[str, Any]] = fields.JSONField(default=list)  # type: ignore[assignment]
    groups: list[str] = fields.JSONField(default=list)  # type: ignore[assignment]
    steps: list[str] = fields.JSONField(default=list)  # type: ignore[assignment]
    # The kinds of resource it needs (灭火器, 空气呼吸器): the ledger's nearest usable ones are
    # listed in its broadcast (models/resources.py).
    resources: list[str] = fields.JSONField(default=list)  # type: ignore[assignment]
    report_level = fields.CharField(max_length=8, default="")  # 事故上报 countdown at or above
    active = fields.BooleanField(default=True)
    loaded_at = fields.DatetimeField()
    reviewed_on = fields.DateField(null=True)   # last 评审 or 评估 (第三十五条: every 3 years)

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
    # The review (评估) after the close, drill or real, held in chat (a ticket of its own kind,
    # models/emergency_review.py): what was said, when, and whether its 评估报告 was sent.
    reviewed_at = fields.DatetimeField(null=True)
    review: dict[str, Any] | None = fields.JSONField(null=True)  # type: ignore[assignment]
    review_sent = fields.BooleanField(default=False)
    board_due_at = fields.DatetimeField(null=True)     # answers arrived since the last board
    board_sent_at = fields.DatetimeField(null=True)
    board_map = fields.CharField(max_length=64, null=True)   # the map the board last showed
    plan_id: str | None

    class Meta:
        table = "emergency_activation"
        indexes = (("status", "plan_id", "area_id"), ("status", "board_due_at"),
                   ("status", "report_due_at"), ("review_sent", "reviewed_at"))

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


async def new_activation(status: ActivationStatus, raised_by: str, note: str, now: datetime, *,
                         plan_id: str | None, area_id: str | None, level: str = "",
                         drill: bool = False, commander: str = "") -> Activation:
    """An alarm (一键报警, `ALARM`) or a commander's request to start a plan (`CONFIRMING`),
    with a fresh random token: the secret part of its cards' button keys."""
    return await Activation.create(
        status=status, plan_id=plan_id, level=level, area_id=area_id, drill=drill,
        token=secrets.token_hex(8), raised_by=raised_by, commander=commander, note=note,
        created_at=now)


async def activation_by_id(activation_id: int) -> Activation | None:
    return await Activation.get_or_none(id=activation_id)


async def activations_by_id(ids: Collection[int]) -> dict[int, Activation]:
    """These activations, by id, in one query."""
    return {a.id: a for a in await Activation.filter(id__in=ids)}


async def choose(activation: Activation, *, plan_id: str | None = None,
                 level: str | None = None) -> None:
    """The plan or the level chosen for a request being confirmed, stored and set on
    `activation`. No compare-and-set: the last choice stands, and 确认启动 is decided by the
    status (`move`)."""
    chosen: dict[str, Any] = {}
    if plan_id is not None:
        chosen["plan_id"] = plan_id
    if level is not None:
        chosen["level"] = level
    await Activation.filter(id=activation.id).update(**chosen)
    activation.update_from_dict(chosen)


async def active_responses(commander: str | None = None) -> list[Activation]:
    """The active responses in the order they started; only `commander`'s when given."""
    active = Activation.filter(status=ActivationStatus.ACTIVE).order_by("id")
    if commander is not None:
        active = active.filter(commander=commander)
    return list(await active)


async def joinable(activation: Activation, plan: Plan, since: datetime) -> Activation | None:
    """The earliest active response of the same plan, area and kind (drill or not) started
    since `since`: a second 确认启动 joins it instead of calling everyone again. Call it with
    the plan locked (`lock_plan`), so two confirmations are decided one after the other."""
    return await Activation.filter(
        status=ActivationStatus.ACTIVE, plan_id=plan.code, area_id=activation.area_id,
        drill=activation.drill, activated_at__gte=since,
    ).exclude(id=activation.id).order_by("id").first()


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


# ---------------------------------------------------------------------------------------------
# Calling people


async def callees(level: Level) -> list[str]:
    """Whom a level calls: the active holders of its roles (by id), then the active people it
    names. The one rule for an activation and for the plans' group chats; the database picks the
    holders, as a level may call everyone with a role (ten thousand people)."""
    holders = await people_with(*(Role(r) for r in level.roles))
    named = set(await User.filter(active=True, id__in=list(level.people)).values_list(
        "id", flat=True))
    return list(dict.fromkeys([*holders, *(p for p in level.people if p in named)]))


async def call(activation: Activation, plan: Plan, people: list[str], now: datetime,
               platform: str, remind_every: timedelta,
               deputy_for: dict[str, str] | None = None) -> int:
    """Send each person the 收到 / 无法到场 card, a card per 1,000 people (a task id serves one
    send), and record them as responders; people already called are skipped. Returns how many
    were called."""
    known = set(await Responder.filter(activation_id=activation.id).values_list(
        "user_id", flat=True))
    fresh = [p for p in dict.fromkeys(people) if p not in known]
    queued: list[Queued] = []
    rows: list[dict[str, Any]] = []
    for start in range(0, len(fresh), CARD_CHUNK):
        chunk = fresh[start:start + CARD_CHUNK]
        task_id = f"emg-{activation.id}-{secrets.token_hex(6)}"
        queued.append(Queued(f"emg:{activation.id}:card:{task_id}",
                             await _responder_card(activation, plan, task_id), to_users=chunk))
        rows += [{"activation_id": activation.id, "user_id": p, "task_id": task_id,
                  "deputy_for": (deputy_for or {}).get(p, ""), "notified_at": now,
                  "next_remind_at": now + remind_every, "answer": "", "late": False,
                  "reminders": 0, "deputy_called": False} for p in chunk]
    await insert_many(Responder, rows)
    await enqueue_many(queued, now=now, platform=platform, priority=Priority.EMERGENCY)
    return len(fresh)


async def _responder_card(activation: Activation, plan: Plan, task_id: str) -> Card:
    area = await Area.get_or_none(code=activation.area_id or "")
    commander = await User.get_or_none(id=activation.commander)
    key = f"emg:ack:{activation.id}:{activation.token}"
    return Card(
        task_id=task_id,
        title=f"{'【演练】' if activation.drill else '【应急】'}{plan.name}",
        description=f"{activation.level}响应 · 请立即确认",
        fields=(("区域", area.name if area else "全厂"), ("级别", activation.level),
                ("指挥", commander.name if commander else activation.commander)),
        body="；".join(plan.steps[:2])[:160],
        buttons=(Button("收到", f"{key}:ok", 1), Button("无法到场", f"{key}:no", 2)),
    )


async def responder(activation: Activation, user_id: str) -> Responder | None:
    """The person's row in this activation: None when it never called them."""
    return await Responder.get_or_none(activation_id=activation.id, user_id=user_id)


def _waiting(user_id: str) -> QuerySet[Responder]:
    """The person's calls not answered yet, in responses still active."""
    return Responder.filter(user_id=user_id, answer="", activation__status=ActivationStatus.ACTIVE)


async def calls_waiting(user_id: str) -> int:
    return await _waiting(user_id).count()


async def last_call_waiting(user_id: str) -> tuple[Responder, Activation] | None:
    """The newest call the person has not answered, with its activation: what a typed 收到
    answers."""
    row = await _waiting(user_id).order_by("-id").first()
    if row is None:
        return None
    return row, await Activation.get(id=row.activation_id)


async def answer_call(row: Responder, answer: str, now: datetime, *, late: bool = False) -> bool:
    """Record the answer (收到 / 无法到场) once, and stop the reminders; False when an answer
    was recorded first (a second click, a typed 收到 beside the card's). `late`: it came after
    the close, kept on record but counted nowhere."""
    won = await Responder.filter(id=row.id, answer="").update(
        answer=answer, answered_at=now, next_remind_at=None, **({"late": True} if late else {}))
    return bool(won)


async def stop_reminders(activation: Activation) -> None:
    """The response is over: nobody is reminded of it any more."""
    await Responder.filter(activation_id=activation.id).update(next_remind_at=None)


async def responders_to_remind(now: datetime, limit: int) -> list[Responder]:
    """The silent responders of active activations whose reminder is due, the earliest `limit`,
    locked until the transaction ends; rows another instance is reminding are skipped
    (SKIP LOCKED, PostgreSQL; only the responder rows are locked, not their activations).
    Call it in the transaction that queues the reminders and records them."""
    return list(await Responder.filter(
        next_remind_at__lte=now, activation__status=ActivationStatus.ACTIVE,
    ).order_by("next_remind_at").limit(limit).select_for_update(
        skip_locked=True, of=("emergency_responder",)))


async def reminded(ids: Sequence[int], next_at: datetime) -> None:
    """One more reminder sent to each of these responders; the next one is due at `next_at`.
    Counted by the database (`reminders + 1`), not from the rows read."""
    await Responder.filter(id__in=list(ids)).update(
        reminders=F("reminders") + 1, next_remind_at=next_at)


async def handed_over(ids: Sequence[int]) -> None:
    """No more reminders for these responders: their deputies are called instead."""
    await Responder.filter(id__in=list(ids)).update(next_remind_at=None, deputy_called=True)


def headline(activation: Activation, plan: Plan) -> str:
    return f"{'【演练】' if activation.drill else '【应急】'}{plan.name} {activation.level}响应"


async def broadcast(activation: Activation, plan: Plan, tz: ZoneInfo
                    ) -> list[Markdown | Image]:
    """For the plan's group chats: what happened, what to do first, what is at hand; then the
    area's evacuation map, if it has one."""
    area = await Area.get_or_none(code=activation.area_id or "")
    drawn = evacuation_map(area)
    return [await _broadcast_text(activation, plan, area, tz), *([drawn] if drawn else [])]


async def _broadcast_text(activation: Activation, plan: Plan, area: Area | None, tz: ZoneInfo
                          ) -> Markdown:
    commander = await User.get_or_none(id=activation.commander)
    started = (activation.activated_at or activation.created_at).astimezone(tz)
    lines = [f"**{headline(activation, plan)}已启动**",
             f"> 区域：{area.name if area else '全厂'}",
             f"> 指挥：{commander.name if commander else activation.commander}  "
             f"启动时间：{started:%H:%M}",
             *cameras_line(area),
             "**先期处置**"]
    lines += [f"> {n}. {step}" for n, step in enumerate(plan.steps, 1)]
    lines += await resource_lines(plan.resources, area, started.date())
    lines.append("应急人员请在个人消息中点“收到”确认。")
    return Markdown(fit(lines))


def evacuation_map(area: Area | None) -> Image | None:
    """The area's evacuation map (疏散图), as the roster put it in the media store."""
    if area is None or not area.map_digest:
        return None
    return Image(area.map_digest, about=f"{area.name}疏散图")


def cameras_line(area: Area | None) -> list[str]:
    """The area's cameras as links, for the broadcast and the board: the commander and the
    groups see the scene before anyone reaches it."""
    if area is None or not area.cameras:
        return []
    return ["**现场视频**：" + "　".join(f"[{c['name']}]({c['url']})" for c in area.cameras)]


# ---------------------------------------------------------------------------------------------
# The commander's board and the closing summary


def _names(ids: list[str], names: dict[str, str]) -> str:
    shown = "、".join(names.get(i, i) for i in ids[:LISTED])
    return shown + (f"等{len(ids)}人" if len(ids) > LISTED else "")


def took(delta: timedelta) -> str:
    """3分05秒 / 45秒: a response time as a commander reads it."""
    seconds = int(delta.total_seconds())
    return f"{seconds // 60}分{seconds % 60:02d}秒" if seconds >= 60 else f"{seconds}秒"


async def undeliverable(activation: Activation) -> list[str]:
    """People WeCom named invalid (or refused for good) when their card was sent."""
    messages = await OutboxMessage.filter(
        idempotency_key__startswith=f"emg:{activation.id}:card:").values_list("id", flat=True)
    lost = await OutboxDelivery.filter(
        message_id__in=list(messages),
        status__in=[DeliveryStatus.INVALID, DeliveryStatus.FAILED]).values_list(
        "recipient", flat=True)
    return sorted({str(r) for r in lost})


async def board(activation: Activation, plan: Plan, now: datetime, tz: ZoneInfo) -> Markdown:
    """Who acknowledged and when, who cannot come, who has not answered, who could not be
    reached. Answers after the close are not counted here."""
    rows = await Responder.filter(activation_id=activation.id).order_by("answered_at", "id")
    names = await user_names(r.user_id for r in rows)
    lost = await undeliverable(activation)
    start = activation.activated_at or activation.created_at
    acked = [r for r in rows if r.answer == ANSWERS["ok"] and not r.late]
    cannot = [r for r in rows if r.answer == ANSWERS["no"] and not r.late]
    silent = [r.user_id for r in rows if (not r.answer or r.late) and r.user_id not in lost]
    lines = [f"**应急看板 · {headline(activation, plan)}**（{now.astimezone(tz):%H:%M:%S}）",
             f"> 已确认 {len(acked)}/{len(rows)}，无法到场 {len(cannot)}，"
             f"未回复 {len(silent)}" + (f"，无法送达 {len(lost)}" if lost else ""),
             *cameras_line(await Area.get_or_none(code=activation.area_id or ""))]
    if silent:
        lines.append(f"**未回复**：{_names(silent, names)}")
    if cannot:
        lines.append(f"**无法到场**：{_names([r.user_id for r in cannot], names)}")
    if lost:
        lines.append(f"**无法送达**（企业微信账号无效或未激活）：{_names(lost, names)}")
    if acked:
        lines.append("**已确认**：" + "、".join(
            f"{names.get(r.user_id, r.user_id)} {took((r.answered_at or start) - start)}"
            for r in acked[-LISTED:]))
    return Markdown(fit(lines))


async def commander_board(activation: Activation, plan: Plan, now: datetime, tz: ZoneInfo
                          ) -> list[Markdown | Image]:
    """The board the commander is sent as answers arrive, with the area's map the first time
    (or when the roster's map changed since): a refresh every interval never sends the picture
    again. Recorded by compare-and-set, so two boards sent at once carry it once."""
    messages: list[Markdown | Image] = [await board(activation, plan, now, tz)]
    drawn = evacuation_map(await Area.get_or_none(code=activation.area_id or ""))
    if drawn is not None and drawn.media != activation.board_map and await Activation.filter(
            id=activation.id, board_map=activation.board_map).update(board_map=drawn.media):
        activation.board_map = drawn.media
        messages.append(drawn)
    return messages


async def summary(activation: Activation, plan: Plan, tz: ZoneInfo) -> Markdown:
    """The close: how long it lasted and each person's response time."""
    rows = await Responder.filter(activation_id=activation.id).order_by("answered_at", "id")
    names = await user_names(r.user_id for r in rows)
    start = activation.activated_at or activation.created_at
    end = activation.closed_at or start
    acked = [r for r in rows if r.answer and not r.late]
    times = [((r.answered_at or start) - start).total_seconds() for r in acked
             if r.answer == ANSWERS["ok"]]
    lines = [f"**{headline(activation, plan)}已结束**",
             f"> {start.astimezone(tz):%m月%d日 %H:%M} 至 {end.astimezone(tz):%H:%M}，"
             f"历时{took(end - start)}",
             f"> 通知 {len(rows)} 人，确认 {len(times)} 人" +
             (f"，响应时间中位数 {took(timedelta(seconds=statistics.median(times)))}"
              if times else "")]
    lines += [f"> {names.get(r.user_id, r.user_id)}：{r.answer} "
              f"{took((r.answered_at or start) - start)}" for r in acked]
    silent = [r.user_id for r in rows if not r.answer or r.late]
    if silent:
        lines.append(f"**未回复**：{_names(silent, names)}")
    return Markdown(fit(lines))


async def commanders() -> list[str]:
    return await people_with(Role.COMMANDER)


def may_activate(user: User) -> bool:
    """Commanders, safety managers and the principal start plans; anyone may raise an alarm."""
    return any(user.has_role(r) for r in (Role.COMMANDER, Role.SAFETY_MANAGER, Role.PRINCIPAL))


async def active_plans() -> list[Plan]:
    return list(await Plan.filter(active=True).order_by("code"))


async def active_plan(code: str) -> Plan | None:
    """The plan with this code, if it is in force (a plan picked from a card's list)."""
    return await Plan.get_or_none(code=code, active=True)


async def plan_of(activation: Activation) -> Plan:
    """The activation's plan, once one is chosen. Plans are never deleted (one taken out of
    force is kept, inactive), so this fails only for an activation that has none."""
    return await Plan.get(code=activation.plan_id or "")


async def plans_of(activations: Iterable[Activation]) -> dict[str, Plan]:
    """The plans of these activations, by code, in one query."""
    return {p.code: p for p in await Plan.filter(code__in={a.plan_id for a in activations})}


async def lock_plan(code: str) -> Plan | None:
    """The plan, locked until the transaction ends: two commanders confirming the same plan at
    once are served one after the other (the second joins the first's activation)."""
    return await Plan.filter(code=code).select_for_update().first()
