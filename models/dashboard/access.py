"""What a person may see on the dashboard, by their roles: principals, safety managers and
administrators the whole plant; supervisors (people with reports) their departments; everyone
else their own tickets (reported, owned or to review). A refusal is recorded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from tortoise.expressions import Q, Subquery
from tortoise.queryset import QuerySet

from models.audit import record
from models.hazard import Status, Ticket, hazards
from models.org import Role, User

PLANT_ROLES = (Role.PRINCIPAL, Role.SAFETY_MANAGER, Role.ADMIN)


class Scope(StrEnum):
    PLANT = "plant"
    DEPARTMENTS = "departments"
    OWN = "own"


@dataclass(frozen=True)
class Viewer:
    id: str                 # the roster's id, or "admin:<name>" for a local administrator
    name: str
    scope: Scope
    departments: tuple[str, ...] = ()

    @property
    def whole_plant(self) -> bool:
        return self.scope is Scope.PLANT


async def viewer_of(user: User | None, admin: str = "") -> Viewer:
    if user is None:
        return Viewer(f"admin:{admin}", admin, Scope.PLANT)
    if any(user.has_role(r) for r in PLANT_ROLES):
        return Viewer(user.id, user.name, Scope.PLANT)
    reports = await User.filter(supervisor_id=user.id, active=True).values_list(
        "department_id", flat=True)
    if reports:
        departments = sorted({str(d) for d in (user.department_id, *reports) if d})
        return Viewer(user.id, user.name, Scope.DEPARTMENTS, tuple(departments))
    return Viewer(user.id, user.name, Scope.OWN)


def visible_tickets(viewer: Viewer) -> QuerySet[Ticket]:
    """The hazards this viewer may see, drafts never."""
    tickets = hazards().exclude(status=Status.DRAFT)
    if viewer.scope is Scope.PLANT:
        return tickets
    if viewer.scope is Scope.DEPARTMENTS:
        people = Subquery(User.filter(department_id__in=list(viewer.departments)).values("id"))
        return tickets.filter(Q(owner_id__in=people) | Q(reporter_id__in=people))
    return tickets.filter(Q(reporter_id=viewer.id) | Q(owner_id=viewer.id)
                          | Q(reviewer_id=viewer.id))


async def refused(viewer: Viewer, what: str, now: datetime) -> None:
    """A page or a file the viewer may not see: recorded, for whoever looks at the audit."""
    await record(at=now, actor=viewer.id, action="dashboard.refused", subject_type="dashboard",
                 subject_id=what[:64], note=f"{viewer.scope.value} viewer")
