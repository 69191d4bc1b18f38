"""The emergency page's figures: activations and drills, the newest first, with each person's
response time (from the call to their answer) and the mean of those who answered."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from models.emergency import Activation, Responder
from models.org import area_names, user_names

RESPONSES_SHOWN = 20


@dataclass(frozen=True)
class Answer:
    name: str
    answer: str                  # 收到 / 无法到场, "" for none
    notified_at: datetime
    answered_at: datetime | None
    deputy_for: str

    @property
    def seconds(self) -> float | None:
        if self.answered_at is None:
            return None
        return max(0.0, (self.answered_at - self.notified_at).total_seconds())


@dataclass
class Response:
    id: int
    label: str
    plan: str
    level: str
    area: str
    drill: bool
    status: str
    activated_at: datetime | None
    closed_at: datetime | None
    people: list[Answer] = field(default_factory=list)

    @property
    def answered(self) -> int:
        return sum(1 for p in self.people if p.answered_at is not None)

    @property
    def mean_seconds(self) -> float | None:
        times = [s for p in self.people if (s := p.seconds) is not None]
        return sum(times) / len(times) if times else None


async def responses(drill: bool | None, page: int = 1) -> tuple[list[Response], bool]:
    """Activations that were started (drills only, real ones only, or both for None), the
    newest first, a page of RESPONSES_SHOWN; and whether there are more."""
    started = Activation.filter(activated_at__isnull=False)
    if drill is not None:
        started = started.filter(drill=drill)
    rows = await started.order_by("-activated_at", "-id").offset(
        (page - 1) * RESPONSES_SHOWN).limit(RESPONSES_SHOWN + 1).prefetch_related("plan")
    more, rows = len(rows) > RESPONSES_SHOWN, rows[:RESPONSES_SHOWN]
    called = await Responder.filter(activation_id__in=[a.id for a in rows]).order_by(
        "answered_at", "id").values("activation_id", "user_id", "answer", "notified_at",
                                    "answered_at", "deputy_for")
    names = await user_names({str(r["user_id"]) for r in called}
                             | {str(r["deputy_for"]) for r in called if r["deputy_for"]})
    areas = await area_names({a.area_id for a in rows if a.area_id})
    people: dict[int, list[Answer]] = defaultdict(list)
    for r in called:
        people[int(r["activation_id"])].append(Answer(
            names.get(str(r["user_id"]), str(r["user_id"])), str(r["answer"]),
            r["notified_at"], r["answered_at"],
            names.get(str(r["deputy_for"]), str(r["deputy_for"]))))
    return [Response(a.id, a.label, a.plan.name if a.plan else "",  # type: ignore[union-attr]
                     a.level, areas.get(a.area_id or "", ""), a.drill, a.status.value,
                     a.activated_at, a.closed_at,
                     sorted(people[a.id], key=lambda p: (p.answered_at is None,
                                                         p.seconds or 0.0, p.name)))
            for a in rows], more
