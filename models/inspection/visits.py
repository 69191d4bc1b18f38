"""Visits: a patroller reaching a checkpoint (scanned, typed or photographed), with the time, and
the answers to its checklist. A visit that does not count for a round (off the route, outside
the window, done before) is recorded too, with why: a plant asks who scanned what, not only who
was expected.

An item is answered once per visit (the key refuses a second answer). An 异常 becomes a hazard
draft, and the same item found 异常 again while its ticket is open is linked to that ticket
rather than filed twice."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from models.audit import record
from models.hazard import ACTIVE, Ticket
from models.inspection.rounds import Round
from models.inspection.sites import Checkpoint
from models.sql import insert_once


class Source(StrEnum):
    SCAN = "scan"       # the platform's scanner (WeCom scancode_waitmsg)
    TYPED = "typed"     # the short code typed
    PHOTO = "photo"     # a photo of the label, decoded on the server


class NotCounted(StrEnum):
    OFF_ROUTE = "off_route"      # not on any of the person's rounds
    OFF_WINDOW = "off_window"    # on a round, outside its window
    DONE_BEFORE = "done_before"  # this round's checklist for it was answered already


class Result(StrEnum):
    OK = "ok"
    ABNORMAL = "abnormal"
    SKIPPED = "skipped"

    @property
    def label(self) -> str:
        return {"ok": "正常", "abnormal": "异常", "skipped": "跳过"}[self]


class Visit(Model):
    id = fields.BigIntField(primary_key=True)
    round: fields.ForeignKeyNullableRelation[Round] = fields.ForeignKeyField(
        "models.Round", related_name="visits", null=True, on_delete=fields.RESTRICT)
    checkpoint: fields.ForeignKeyRelation[Checkpoint] = fields.ForeignKeyField(
        "models.Checkpoint", related_name="visits", on_delete=fields.RESTRICT)
    by = fields.CharField(max_length=64)
    at = fields.DatetimeField()
    source = fields.CharEnumField(Source, max_length=8)
    not_counted = fields.CharField(max_length=12, default="")    # NotCounted, "" = counted
    finished_at = fields.DatetimeField(null=True)     # its checklist answered whole
    round_id: int | None
    checkpoint_id: str

    class Meta:
        table = "inspection_visit"
        indexes = (("round_id", "checkpoint_id"), ("checkpoint_id", "at"), ("at",))


class ItemAnswer(Model):
    """One checklist item answered at a visit."""

    id = fields.BigIntField(primary_key=True)
    key = fields.CharField(max_length=64, unique=True)       # visit:item
    visit: fields.ForeignKeyRelation[Visit] = fields.ForeignKeyField(
        "models.Visit", related_name="answers", on_delete=fields.CASCADE)
    checkpoint = fields.CharField(max_length=32)
    item = fields.CharField(max_length=32)
    result = fields.CharEnumField(Result, max_length=8)
    value = fields.FloatField(null=True)              # a reading
    shown = fields.CharField(max_length=64, default="")   # the reading or choice as given
    out_of_range = fields.BooleanField(default=False)
    note = fields.CharField(max_length=200, default="")   # 异常's few words, 跳过's reason
    photo = fields.CharField(max_length=64, default="")
    ticket_id = fields.BigIntField(null=True)         # the hazard it was filed as or linked to
    at = fields.DatetimeField()
    visit_id: int

    class Meta:
        table = "inspection_answer"
        indexes = (("checkpoint", "item", "ticket_id"), ("at",))


async def record_visit(round_id: int | None, checkpoint: str, by: str, at: datetime,
                       source: Source, not_counted: NotCounted | None = None) -> Visit:
    return await Visit.create(round_id=round_id, checkpoint_id=checkpoint, by=by, at=at,
                              source=source, not_counted=not_counted.value if not_counted else "")


async def visit_done(round_id: int, checkpoint: str) -> Visit | None:
    """The visit that answered this round's checkpoint whole, by whichever patroller."""
    return await Visit.filter(round_id=round_id, checkpoint_id=checkpoint, not_counted="",
                              finished_at__isnull=False).order_by("id").first()


async def visit_under_way(round_id: int, checkpoint: str, by: str) -> Visit | None:
    """The person's visit of this round's checkpoint whose checklist is not finished."""
    return await Visit.filter(round_id=round_id, checkpoint_id=checkpoint, not_counted="",
                              by=by, finished_at__isnull=True).order_by("id").first()


async def visit_by_id(visit_id: int) -> Visit | None:
    return await Visit.get_or_none(id=visit_id)


@dataclass(frozen=True)
class Given:
    """An answer as the checklist dialog collected it."""

    item: str
    result: Result
    value: float | None = None
    shown: str = ""
    out_of_range: bool = False
    note: str = ""
    photo: str = ""


async def record_answer(visit: Visit, given: Given, now: datetime) -> int | None:
    """Keep one item's answer as soon as it is given (a restart loses nothing); None when the
    item was answered before at this visit."""
    made = await insert_once(ItemAnswer, [{
        "key": f"{visit.id}:{given.item}", "visit_id": visit.id,
        "checkpoint": visit.checkpoint_id, "item": given.item, "result": given.result.value,
        "value": given.value, "shown": given.shown, "out_of_range": given.out_of_range,
        "note": given.note, "photo": given.photo, "ticket_id": None, "at": now}], unique="key")
    return next(iter(made.values()), None)


async def answers_of(visit_id: int) -> list[ItemAnswer]:
    return await ItemAnswer.filter(visit_id=visit_id).order_by("id")


async def finish_visit(visit: Visit, now: datetime) -> bool:
    """The visit's checklist is answered whole; False when it was finished before."""
    return bool(await Visit.filter(id=visit.id, finished_at__isnull=True).update(
        finished_at=now))


async def open_finding(checkpoint: str, item: str) -> Ticket | None:
    """The open ticket this checkpoint's item was filed as before, if any."""
    ids = await ItemAnswer.filter(checkpoint=checkpoint, item=item, ticket_id__isnull=False
                              ).values_list("ticket_id", flat=True)
    if not ids:
        return None
    return await Ticket.filter(id__in=list(ids), status__in=ACTIVE).order_by("id").first()


async def link_answer(answer: ItemAnswer, ticket_id: int, where: str, now: datetime, *,
                      again: bool) -> None:
    """The answer filed as the ticket (a draft made from it) or, `again`, found once more while
    the ticket is open; the ticket's record names the patrol, its checkpoint and round."""
    await ItemAnswer.filter(id=answer.id).update(ticket_id=ticket_id)
    visit = await Visit.get(id=answer.visit_id)
    await record(at=now, actor=visit.by, action="patrol_found_again" if again else
                 "patrol_found", subject_type="ticket", subject_id=str(ticket_id), note=where,
                 data={"visit": visit.id, "round": visit.round_id, "item": answer.item})


async def finished_checkpoints(round_id: int) -> dict[str, datetime]:
    """The round's checkpoints whose checklist is answered, with when each was reached."""
    return {str(c): at for c, at in await Visit.filter(
        round_id=round_id, not_counted="", finished_at__isnull=False
    ).order_by("at").values_list("checkpoint_id", "at")}


async def reached_in(round_ids: Sequence[int]) -> dict[int, dict[str, datetime]]:
    """Per round, its checkpoints answered whole and when each was reached."""
    found: dict[int, dict[str, datetime]] = {i: {} for i in round_ids}
    for round_id, checkpoint, at in await Visit.filter(
            round_id__in=list(round_ids), not_counted="", finished_at__isnull=False
    ).order_by("at").values_list("round_id", "checkpoint_id", "at"):
        found[int(round_id)].setdefault(str(checkpoint), at)
    return found
