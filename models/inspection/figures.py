"""The month's patrol figures for the monthly report: rounds by route and area, findings per
checkpoint, readings out of range, and the pace between checkpoints (a round that reached
twelve points in two minutes was not walked)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from models.inspection.rounds import Round, RoundStatus
from models.inspection.sites import Checkpoint
from models.inspection.visits import ItemAnswer, Result, Source, Visit
from models.org import area_names

MIN_POINTS = 3      # a round's pace is judged over at least this many checkpoints


@dataclass
class MonthFigures:
    rounds: int = 0
    done: int = 0
    late: int = 0
    missed: int = 0
    findings: int = 0
    out_of_range: int = 0
    mean_gap_seconds: float | None = None
    # (route or area, done, late, missed), the most missed first
    by_route: list[tuple[str, int, int, int]] = field(default_factory=list)
    by_area: list[tuple[str, int, int, int]] = field(default_factory=list)
    by_checkpoint: list[tuple[str, int]] = field(default_factory=list)   # findings
    suspicious: list[str] = field(default_factory=list)
    # How checkpoints were reached: a typed code proves less than a scan or a label's photo.
    by_source: dict[Source, int] = field(default_factory=dict)


async def month_figures(start: datetime, end: datetime, suspicious_seconds: int
                        ) -> MonthFigures:
    rounds = await Round.filter(closes_at__gte=start, closes_at__lt=end,
                                status__not=RoundStatus.OPEN)
    m = MonthFigures(rounds=len(rounds))
    if not rounds:
        return m
    counts = Counter(r.status for r in rounds)
    m.done, m.late, m.missed = (counts[RoundStatus.DONE], counts[RoundStatus.LATE],
                                counts[RoundStatus.MISSED])
    area_of = dict(await Checkpoint.filter(code__in=list(
        {c for r in rounds for c in r.checkpoints})).values_list("code", "area_id"))
    names = await area_names({str(a) for a in area_of.values()})
    routes: dict[str, Counter[RoundStatus]] = defaultdict(Counter)
    areas: dict[str, Counter[RoundStatus]] = defaultdict(Counter)
    for r in rounds:
        routes[r.route_name][r.status] += 1
        for area in {area_of[c] for c in r.checkpoints if c in area_of}:
            areas[names.get(str(area), str(area))][r.status] += 1
    m.by_route, m.by_area = _table(routes), _table(areas)
    answers = await ItemAnswer.filter(at__gte=start, at__lt=end, result=Result.ABNORMAL
                                  ).values_list("checkpoint", "out_of_range")
    m.findings = len(answers)
    m.out_of_range = sum(1 for _, out in answers if out)
    m.by_checkpoint = Counter(str(c) for c, _ in answers).most_common()
    reached: dict[int, list[datetime]] = defaultdict(list)
    sources: Counter[Source] = Counter()
    for round_id, at, source in await Visit.filter(
            round_id__in=[r.id for r in rounds], not_counted="", finished_at__isnull=False
    ).order_by("at").values_list("round_id", "at", "source"):
        reached[int(round_id)].append(at)
        sources[Source(source)] += 1
    m.by_source = dict(sources)
    gaps = []
    for r in rounds:
        times = reached.get(r.id, [])
        if len(times) < 2:
            continue
        gap = (times[-1] - times[0]).total_seconds() / (len(times) - 1)
        gaps.append(gap)
        if len(times) >= MIN_POINTS and gap < suspicious_seconds:
            m.suspicious.append(f"{r.route_name} {r.period}：{len(times)}个点用时"
                                f"{(times[-1] - times[0]).total_seconds():.0f}秒")
    m.mean_gap_seconds = sum(gaps) / len(gaps) if gaps else None
    return m


def _table(found: dict[str, Counter[RoundStatus]]) -> list[tuple[str, int, int, int]]:
    rows = [(name, c[RoundStatus.DONE], c[RoundStatus.LATE], c[RoundStatus.MISSED])
            for name, c in found.items()]
    return sorted(rows, key=lambda row: (-row[3], -row[2], row[0]))
