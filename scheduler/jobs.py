"""Everything the scheduler does, as one `tick(now)`: the same code runs from APScheduler in the
service, from `safetybot tick [--now]`, and in tests with a clock they control.

Each job reads what is due from the database and writes outbox rows, so a tick can run on any
instance, be repeated, or fail half-way: what it did commits with the rows that record it, and
what it did not is still due at the next tick. Daily and monthly jobs claim their period in the
transaction that does their work (models/schedule.py). The monthly report is the exception: the
tick only claims it, and a task of its own builds and sends it (`Jobs._monthly`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from models import transaction
from models.catalog import Catalog
from models.closure import month_window
from models.emergency import EmergencyPolicy
from models.escalation import managers
from models.inspection.rules import InspectionRules
from models.outgoing import COMMON, Limits
from models.people.rules import QualificationRules
from models.plan_calendar import DrillRules, plan_dates
from models.resources import problems
from models.schedule import claim_period, finish_period, start_period
from models.training.rules import TrainingRules
from scheduler.auditor import audit_alarms
from scheduler.dialogs import expire_dialogs
from scheduler.digest import safety_managers, send_digest
from scheduler.emergency import run_emergency
from scheduler.escalation import arm_ladders, fire_due
from scheduler.inspection import digest_lines as inspection_digest
from scheduler.inspection import month_lines as inspection_month
from scheduler.inspection import run_rounds
from scheduler.monthly import MediaSink, send_monthly
from scheduler.plan_calendar import drill_count_lines, overdue_lines, remind_plans
from scheduler.policy import Policy
from scheduler.qualification import digest_lines, month_lines, remind_certificates
from scheduler.resources import problem_lines, remind_resources
from scheduler.review_report import send_review_reports
from scheduler.risk import update_risk_status
from scheduler.training import digest_lines as training_digest
from scheduler.training import month_lines as training_month
from scheduler.training import run_daily, run_weekly

log = logging.getLogger(__name__)

# A monthly report started this long ago and not finished is presumed dead (its process stopped)
# and is built again by the next tick. It takes 10–25 s at a million tickets (benchmarks/README.md,
# tick benchmark), so a build still running is not taken for a dead one.
REPORT_LEASE = timedelta(minutes=10)


@dataclass
class TickReport:
    done: dict[str, int] = field(default_factory=dict)     # job → rows it acted on
    failed: dict[str, str] = field(default_factory=dict)   # job → the error

    def summary(self) -> str:
        parts = [f"{job} {n}" for job, n in self.done.items()]
        parts += [f"{job} FAILED ({error})" for job, error in self.failed.items()]
        return ", ".join(parts)

    def acted(self) -> dict[str, int]:
        """The jobs that did something. The auditor's number counts late steps, which it has
        warned about itself; it is not work done."""
        return {job: n for job, n in self.done.items() if n and job != "auditor"}


@dataclass
class Jobs:
    policy: Policy
    catalog: Catalog
    media: MediaSink
    platform: str       # where scheduled notices go: WeCom when connected, else the web chat
    emergency: EmergencyPolicy = field(default_factory=EmergencyPolicy)
    # The plant's modules switched on.
    modules: Collection[str] = ("hazard", "emergency", "qualification", "training",
                                "inspection")
    limits: Limits = COMMON     # what the platform of scheduled notices holds
    drills: DrillRules = field(default_factory=lambda: DrillRules(()))   # config/drills.toml
    # config/certificates.toml and work-types.toml
    qualification: QualificationRules = field(default_factory=QualificationRules)
    training: TrainingRules = field(default_factory=TrainingRules)    # config/training.toml
    inspection: InspectionRules = field(default_factory=InspectionRules)  # config/inspection.toml
    # The monthly reports being built in this process, by month.
    _reports: dict[str, asyncio.Task[None]] = field(default_factory=dict, init=False,
                                                    repr=False)

    async def tick(self, now: datetime,
                   stops_tick: Callable[[Exception], bool] = lambda _: False) -> TickReport:
        """Run every job once as of `now`. One job failing does not stop the others, except
        with an error that `stops_tick` says every job would meet (the database is down):
        that is raised at once, and the next tick tries again."""
        report = TickReport()
        # (job, the module it belongs to, or "" for every plant, what it runs)
        # Emergencies first: an active one's reminders never wait for a daily job (the
        # monthly report is only claimed here, and built by a task of its own).
        jobs: list[tuple[str, str, Callable[[datetime], Awaitable[int]]]] = [
            ("emergency", "emergency",
             lambda at: run_emergency(self.emergency, at, self.platform, self.policy.tz)),
            ("dialogs", "", expire_dialogs),
            ("rounds", "inspection", self._rounds),
            ("ladders", "hazard", lambda at: arm_ladders(self.policy, at)),
            ("alarms", "hazard",
             lambda at: fire_due(self.policy, self.catalog, at, self.platform, self.limits)),
            ("risk", "hazard", self._risk),
            # Before the digest, which then counts today's lapses.
            ("certificates", "qualification", self._certificates),
            ("training", "training", self._training),
            ("training-week", "training", self._training_week),
            ("digest", "hazard", self._digest),
            ("monthly", "hazard", self._monthly),
            ("plans", "emergency", self._plans),
            ("reviews", "emergency",
             lambda at: send_review_reports(at, self.policy.tz, self.media, self.platform)),
            ("resources", "emergency", self._resources),
            ("auditor", "hazard", lambda at: audit_alarms(self.policy, at)),
        ]
        for name, module, job in jobs:
            if module and module not in self.modules:
                continue
            try:
                report.done[name] = await job(now)
            except Exception as exc:
                if stops_tick(exc):
                    raise
                log.exception("scheduled job %s failed; the next tick tries again", name)
                report.failed[name] = f"{type(exc).__name__}: {exc}"
        acted = report.acted()
        if acted:     # an idle tick (every 30 s) says nothing
            log.info("tick: %s", ", ".join(f"{job} {n}" for job, n in acted.items()),
                     extra={"done": acted})
        return report

    def _day(self, now: datetime) -> datetime | None:
        """Today's local midnight once the digest time has come, else None."""
        local = now.astimezone(self.policy.tz)
        if local.time() < self.policy.digest_time:
            return None
        return local.replace(hour=0, minute=0, second=0, microsecond=0)

    async def _once_a_day(self, job: str, now: datetime, work: Callable[[], Awaitable[int]]
                          ) -> int:
        """`work` once a day after the digest time, by the instance that claims the day, in
        the transaction of the work."""
        day = self._day(now)
        if day is None:
            return 0
        async with transaction():
            if not await claim_period(job, f"{day:%Y-%m-%d}", now):
                return 0
            return await work()

    async def _risk(self, now: datetime) -> int:
        return await self._once_a_day("risk", now, lambda: update_risk_status(
            self.policy.risk_rules, now, self.platform))

    async def _digest(self, now: datetime) -> int:
        day = self._day(now)
        if day is None:
            return 0
        to = await safety_managers()
        if not to:
            return 0
        async with transaction():
            if not await claim_period("digest", f"{day:%Y-%m-%d}", now):
                return 0
            emergency = (overdue_lines(await plan_dates(self.drills, self.policy.tz, day.year),
                                       day.date())
                         + problem_lines(await problems(day.date()))
                         if "emergency" in self.modules else [])
            people = (await digest_lines(self.qualification, day.date())
                      if "qualification" in self.modules else [])
            training = (await training_digest(day.date())
                        if "training" in self.modules else [])
            rounds = (await inspection_digest(day - timedelta(days=1), day)
                      if "inspection" in self.modules else [])
            await send_digest(to, day, now, self.policy.tz, self.platform,
                              [*emergency, *rounds, *training, *people])
            return 1

    async def _rounds(self, now: datetime) -> int:
        """Patrol rounds opened, reminded and closed as their windows come (every tick)."""
        async with transaction():
            return await run_rounds(self.inspection, now, self.policy.tz, self.platform)

    async def _plans(self, now: datetime) -> int:
        """The drill and evaluation reminders that have come due."""
        return await self._once_a_day("plans", now, lambda: remind_plans(
            self.drills, self.policy.calendar, now, self.platform))

    async def _certificates(self, now: datetime) -> int:
        """The certificates' reminders and lapses that have come due."""
        return await self._once_a_day("certificates", now, lambda: remind_certificates(
            self.qualification, self.policy.calendar, now, self.platform))

    async def _training(self, now: datetime) -> int:
        """Packs, assignment reminders and escalations, practical checks drawn."""
        return await self._once_a_day("training", now, lambda: run_daily(
            self.training, self.policy.calendar, now, self.platform))

    async def _training_week(self, now: datetime) -> int:
        """On Mondays, the week before's groups: the weak ones given a catch-up course."""
        day = self._day(now)
        if day is None or day.weekday() != 0:
            return 0
        week = day.date().isocalendar()
        async with transaction():
            if not await claim_period("training-week", f"{week.year}-W{week.week:02d}", now):
                return 0
            return await run_weekly(self.training, day - timedelta(days=7), day, day.date(),
                                    now, self.platform)

    async def _resources(self, now: datetime) -> int:
        """The keepers' inspection and expiry reminders that have come due."""
        return await self._once_a_day("resources", now, lambda: remind_resources(
            self.policy.calendar, now, self.platform))

    async def _monthly(self, now: datetime) -> int:
        """On the first day of a month, claim the report on the month before and start a task
        that builds and sends it: the tick, and an emergency's reminders in the ticks after
        it, never wait for the report. A report claimed and not finished (the process stopped
        mid-way) is started again by the first tick REPORT_LEASE after its last start, on any
        day; its messages' idempotency keys keep it from going out twice."""
        day = self._day(now)
        if day is None:
            return 0
        month = f"{day.replace(day=1) - timedelta(days=1):%Y-%m}"
        building = self._reports.get(month)
        if building is not None and not building.done():
            return 0
        new = day.day == 1
        if new and not await managers():
            return 0        # nobody to send it to: not claimed
        if not await start_period("monthly", month, now, REPORT_LEASE, new=new):
            return 0
        self._reports[month] = asyncio.create_task(self._report(month, now))
        return 1

    async def _report(self, month: str, now: datetime) -> None:
        """Build and send the month's report, then mark it finished. A failure is logged and
        left to the tick that restarts it (a bug would fail every try: once a lease, not every
        tick)."""
        year = int(month[:4])
        try:
            drills = (drill_count_lines(await plan_dates(self.drills, self.policy.tz, year),
                                        year) if "emergency" in self.modules else [])
            window = month_window(month, self.policy.tz)
            people = (await month_lines(window.start, window.end)
                      if "qualification" in self.modules else [])
            last = (window.end - timedelta(days=1)).astimezone(self.policy.tz).date()
            training = (await training_month(
                window.start, window.end, last.replace(day=1), last,
                now.astimezone(self.policy.tz).date()) if "training" in self.modules else [])
            rounds = (await inspection_month(window.start, window.end,
                                             self.inspection.suspicious_seconds)
                      if "inspection" in self.modules else [])
            await send_monthly(month, now, self.policy.tz, self.catalog, self.media,
                               self.platform, await managers(),
                               [*drills, *rounds, *people, *training])
            await finish_period("monthly", month, now)
        except Exception:
            log.exception("monthly report failed; a tick starts it again %s after it began",
                          REPORT_LEASE, extra={"month": month})

    async def settle(self) -> None:
        """Wait for the reports the ticks started: `safetybot tick` before it exits, tests
        before they read the outbox."""
        await asyncio.gather(*self._reports.values())

    async def stop(self) -> None:
        """Cancel the reports being built (the service is stopping); the first tick
        REPORT_LEASE after a report's start, on any instance, builds it again."""
        for task in self._reports.values():
            task.cancel()
        await asyncio.gather(*self._reports.values(), return_exceptions=True)
