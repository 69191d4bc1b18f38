"""The auditor: steps of the ladder that should have fired and did not, and opened tickets whose
ladder was never written. It changes nothing; it tells (a warning in the log, and the count the
service shows as the `safetybot_alarms_late` metric), because a silent scheduler is the failure
nobody notices."""

from __future__ import annotations

import logging
from datetime import datetime

from tortoise.expressions import Q

from models.catalog import Grade
from models.escalation import Alarm, AlarmState
from models.hazard import Status, Ticket
from scheduler.policy import Policy

log = logging.getLogger(__name__)
NAMED = 10     # tickets named in the warning; the metric counts them all


async def audit_alarms(policy: Policy, now: datetime) -> int:
    """How many steps are late beyond the grace period; routine steps held over quiet time are
    late only once their release (start of working time plus the spread) is past too."""
    cutoff = now - policy.audit_grace
    late = Alarm.filter(state=AlarmState.PENDING, due_at__lt=cutoff, ticket__status=Status.OPEN)
    opened = policy.calendar.opened_at(now)
    if opened is None:
        late = late.filter(ticket__grade=Grade.MAJOR)
    elif opened + policy.ladder.spread >= cutoff:
        late = late.filter(Q(ticket__grade=Grade.MAJOR) | Q(due_at__gte=opened))
    # Pending steps are nearly all in the future, but the planner takes state and due_at to be
    # independent and expects most of them late: asked for a count, it hashes every open ticket
    # and compiles the plan with JIT (~200 ms at 100,000 open tickets, every tick). Walking the
    # (state, due_at) index from the oldest pending step tells in a row or two whether anything
    # is late at all; only then is it counted (benchmarks/README.md, Tick benchmark).
    count = await late.count() if await late.order_by("due_at").limit(1).values_list("id") else 0
    unarmed = Ticket.filter(status=Status.OPEN, armed=False, updated_at__lt=cutoff)
    count += await unarmed.count()
    if count:
        numbers = sorted(set(await late.limit(NAMED).values_list("ticket__number", flat=True))
                         | set(await unarmed.limit(NAMED).values_list("number", flat=True)))
        log.warning("reminders or escalations are late", extra={
            "late": count, "tickets": ", ".join(str(n) for n in numbers[:NAMED])})
    return count
