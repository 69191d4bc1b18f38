"""Runs of the scheduler's periodic jobs (the daily digest, the monthly report, the risk
status): one row per job and period, so a period is done once whichever instance or tick gets
there first.

A job whose work is too long for a tick's transaction (the monthly report) starts with
`start_period` and ends with `finish_period`, a second row: between the two, `ran_at` is when its
work last started, and work started a lease ago and not finished is presumed dead (its process
stopped) and may be started again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tortoise import fields
from tortoise.models import Model

from models.sql import insert_once


class JobRun(Model):
    id = fields.BigIntField(primary_key=True)
    key = fields.CharField(max_length=100, unique=True)    # job:period, e.g. digest:2026-11-29
    ran_at = fields.DatetimeField()

    class Meta:
        table = "job_run"


async def claim_period(job: str, period: str, now: datetime) -> bool:
    """True for the one caller that runs `job` for `period`. Call it in the transaction that does
    the job's work: a job that fails leaves the period unclaimed for the next tick."""
    return bool(await insert_once(JobRun, [{"key": f"{job}:{period}", "ran_at": now}],
                                  unique="key"))


def _done(job: str, period: str) -> str:
    return f"{job}:{period}:done"


async def start_period(job: str, period: str, now: datetime, lease: timedelta, *, new: bool
                       ) -> bool:
    """True for the one caller that starts `job`'s work for `period` now. With `new` the period
    may be claimed for the first time; else only a claimed one is started again, when it is
    not finished and its last start is `lease` ago or more. Taking it over is a compare-and-set
    on `ran_at`, so of two instances one wins."""
    key = f"{job}:{period}"
    started = dict(await JobRun.filter(key__in=(key, _done(job, period)))
                   .values_list("key", "ran_at"))
    if _done(job, period) in started:
        return False
    if key not in started:
        return new and await claim_period(job, period, now)
    return bool(await JobRun.filter(key=key, ran_at__lte=now - lease).update(ran_at=now))


async def finish_period(job: str, period: str, now: datetime) -> None:
    """`job`'s work for `period` is done: no one starts it again."""
    await insert_once(JobRun, [{"key": _done(job, period), "ran_at": now}], unique="key")
