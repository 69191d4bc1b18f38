"""Runs of the scheduler's periodic jobs (the daily digest, the monthly report, the risk
status): one row per job and period, so a period is done once whichever instance or tick gets
there first."""

from __future__ import annotations

from datetime import datetime

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
