"""The auditor: steps of the ladder that should have fired and did not, and opened tickets whose
ladder was never written. It changes nothing; it tells (a warning in the log, and the count the
service shows as the `safetybot_alarms_late` metric), because a silent scheduler is the failure
nobody notices."""

from __future__ import annotations

import logging
from datetime import datetime

from models.ladders import late_steps
from scheduler.policy import Policy

log = logging.getLogger(__name__)
NAMED = 10     # tickets named in the warning; the metric counts them all


async def audit_alarms(policy: Policy, now: datetime) -> int:
    """How many steps are late beyond the grace period; routine steps held over quiet time are
    late only once their release (start of working time plus the spread) is past too."""
    late = await late_steps(now - policy.audit_grace, policy.calendar.opened_at(now),
                            policy.ladder.spread, NAMED)
    if late.count:
        log.warning("reminders or escalations are late", extra={
            "late": late.count, "tickets": ", ".join(late.tickets)})
    return late.count
