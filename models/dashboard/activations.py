"""Emergency activations as the dashboard and the JSON API list them: filtered (drill or real,
status, the days they were raised), newest first and paged by id, each with its plan and the
people it called, their answers and how long each took to answer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from models.dashboard.ledger import FilterError, day_param, day_start
from models.emergency import Activation, ActivationStatus, Responder

ACTIVATION_KEYS = ("drill", "status", "from", "to")


@dataclass(frozen=True)
class ActivationFilter:
    drill: bool | None = None
    status: str = ""
    since: date | None = None       # raised on or after (`from`)
    until: date | None = None       # raised on or before (`to`)


def parse_activation_filter(params: Mapping[str, str], allowed: tuple[str, ...] = ()
                            ) -> ActivationFilter:
    """The filter of the query string, checked whole; a bad value or an unknown field is
    refused naming the field."""
    unknown = sorted(set(params) - set(ACTIVATION_KEYS) - set(allowed))
    if unknown:
        raise FilterError(unknown[0], "unknown field; the fields are "
                                      + ", ".join(ACTIVATION_KEYS))
    drill = params.get("drill", "")
    if drill not in ("", "true", "false"):
        raise FilterError("drill", "must be true or false")
    status = params.get("status", "")
    if status and status not in (s.value for s in ActivationStatus):
        raise FilterError("status", "must be one of "
                                    + ", ".join(s.value for s in ActivationStatus))
    since, until = day_param(params, "from"), day_param(params, "to")
    if since and until and since > until:
        raise FilterError("to", "is before from")
    return ActivationFilter(drill=None if not drill else drill == "true", status=status,
                            since=since, until=until)


async def activations_before(f: ActivationFilter, tz: ZoneInfo, before: int | None,
                             limit: int) -> list[Activation]:
    """Up to `limit` activations, newest first (by id), below `before` when given; each with
    its plan fetched."""
    found = Activation.all()
    if f.drill is not None:
        found = found.filter(drill=f.drill)
    if f.status:
        found = found.filter(status=ActivationStatus(f.status))
    if f.since:
        found = found.filter(created_at__gte=day_start(f.since, tz))
    if f.until:
        found = found.filter(created_at__lt=day_start(f.until + timedelta(days=1), tz))
    if before is not None:
        found = found.filter(id__lt=before)
    return list(await found.order_by("-id").limit(limit).prefetch_related("plan"))


async def responders_of(activation_ids: list[int]) -> dict[int, list[Responder]]:
    """The people each activation called, in the order they answered (the silent last), in
    one query for the whole page."""
    called: dict[int, list[Responder]] = {i: [] for i in activation_ids}
    if not activation_ids:
        return called
    rows = await Responder.filter(activation_id__in=activation_ids).order_by("id")
    for row in rows:
        called[row.activation_id].append(row)
    for people in called.values():      # in Python: the databases sort nulls differently
        people.sort(key=lambda r: (r.answered_at is None, r.answered_at or r.notified_at, r.id))
    return called


def seconds_to_answer(activation: Activation, responder: Responder) -> float | None:
    """From the start of the response (its activation, or the alarm when it never became
    active) to the person's answer, as the close's summary counts it; None while silent."""
    if responder.answered_at is None:
        return None
    start = activation.activated_at or activation.created_at
    return (responder.answered_at - start).total_seconds()
