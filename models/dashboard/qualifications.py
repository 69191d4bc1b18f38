"""The qualification page's figures: certificates due (review or expiry) within the coming days
or already past it and not renewed; the recent pre-work checks with the people refused."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from models.org import area_names, user_names
from models.people.certificates import expiring, holders_of, superseded
from models.people.checks import QualificationCheck

CHECKS_SHOWN = 30


@dataclass(frozen=True)
class DueCertificate:
    holder: str
    type_code: str
    number: str
    due_on: date
    days: int                    # until it is due; negative: past due


@dataclass(frozen=True)
class Check:
    id: int
    at: datetime
    asked_by: str
    work_type: str
    area: str
    allowed: int
    refused: int
    refusals: tuple[tuple[str, str], ...]      # (name, the reasons)


async def certificates_due(today: date, within_days: int) -> list[DueCertificate]:
    """By due day, the most overdue first; a certificate renewed under a new number is left
    out, as is one whose holder has left the roster."""
    rows = await expiring(today, within_days)
    renewed = await superseded(rows)
    holders = await holders_of(rows)
    return [DueCertificate(holders[r.holder].name, r.type_code, r.number, r.due_on,
                           (r.due_on - today).days)
            for r in rows if r.id not in renewed and r.holder in holders
            and holders[r.holder].active]


async def recent_checks(limit: int = CHECKS_SHOWN) -> list[Check]:
    checks = await QualificationCheck.all().order_by("-at", "-id").limit(limit)
    names = await user_names({c.asked_by for c in checks})
    areas = await area_names({c.area_id for c in checks if c.area_id})
    return [Check(c.id, c.at, names.get(c.asked_by, c.asked_by), c.work_type,
                  areas.get(c.area_id or "", ""), c.allowed, c.refused,
                  tuple((str(v.get("name", "")), "；".join(v.get("reasons", ())))
                        for v in c.verdicts if v.get("reasons")))
            for c in checks]
