"""Training on the clock. Daily, on working days: packs given to the people whose post or dates
changed (a new hire told of the pre-job pack on the first day), assignments reminded before
their deadline and escalated to the supervisors after it (once each, to the recipients frozen
when the course was given), and the practical checks drawn among the day's passers. Weekly:
the groups (a department's post) weak in a course get its catch-up course, their supervisors
are told why, and the safety managers get the week's figures. And the training lines of the
digest and the monthly report."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, timedelta

from models.calendar import WorkCalendar
from models.org import Role, department_names, people_with, user_names
from models.outbox import Queued, enqueue_many
from models.outgoing import Button, Card, Markdown, Text, fit
from models.training.courses import CourseSpec, active_courses
from models.training.enrolments import (
    Enrolment,
    Reason,
    chains_of,
    create_assignment,
    due_steps,
    mark_steps,
    steps_today,
)
from models.training.figures import month_figures, overdue_courses, practicals_waiting
from models.training.groups import GroupFigures, members, supervisors_of, week_figures
from models.training.packs import Given, give_packs
from models.training.practical import PracticalCheck, mark_drawn, pending
from models.training.rules import TrainingRules

BATCH = 500
LISTED = 3          # named per line of the digest
_sample = random.SystemRandom().sample


async def run_daily(rules: TrainingRules, calendar: WorkCalendar, now: datetime,
                    platform: str) -> int:
    """The day's packs, reminders, escalations and practical draws; how many messages."""
    today = now.astimezone(calendar.tz).date()
    if not calendar.working_day(today):
        return 0
    courses = await active_courses()
    messages = [*_pack_messages(await give_packs(courses, rules, today, now), today)]
    messages += await _ladder(rules, {c.code: c.title for c in courses}, today)
    messages += await _draw_practicals(rules, {c.code: c for c in courses}, today)
    return await enqueue_many(messages, now=now, platform=platform) if messages else 0


def _pack_messages(given: Sequence[Given], today: date) -> list[Queued]:
    found = []
    for g in given:
        titles = "、".join(f"《{t}》" for t in g.titles)
        head = ("【岗前培训】欢迎入职！上岗前请完成" if g.reason is Reason.PREJOB
                else "【转岗培训】您调整了岗位或离岗一年以上后重新上岗，按规定需重新完成")
        found.append(Queued(f"train-pack:{g.person_id}:{g.reason.value}:{today}", Text(
            f"{head}{titles}，截止{g.due_on:%m月%d日}。发送“学习”开始，“我的培训”查看进度。"),
            [g.person_id]))
    return found


async def _ladder(rules: TrainingRules, titles: dict[str, str], today: date) -> list[Queued]:
    """Reminders to learners, and one message a day to each supervisor naming their people who
    are late."""
    messages: list[Queued] = []
    late: dict[str, list[Enrolment]] = defaultdict(list)
    managers = await people_with(Role.SAFETY_MANAGER)
    while rows := await due_steps(today, BATCH):
        done = []
        for row in rows:
            sent = steps_today(row, today, rules.remind_days, rules.escalate_days)
            done.append((row, sent))
            title = titles.get(row.course, row.course)
            assert row.due_on is not None
            for step in sent:
                if step.startswith("r"):
                    left = (row.due_on - today).days
                    messages.append(Queued(f"train:{row.id}:{step}", Text(
                        f"【培训提醒】《{title}》将于{row.due_on:%m月%d日}截止，"
                        + (f"还有{left}天" if left else "今天是最后一天")
                        + "。发送“学习”继续。"), [row.person_id]))
                    continue
                level = int(step[1:])
                chain = row.chain or managers
                late[chain[min(level, len(chain)) - 1] if chain else ""].append(row)
                if level == 1:
                    messages.append(Queued(f"train:{row.id}:{step}", Text(
                        f"【培训逾期】《{title}》已于{row.due_on:%m月%d日}截止，您尚未完成，"
                        "已告知您的上级。请尽快发送“学习”完成。"), [row.person_id]))
        await mark_steps(done, today, rules.remind_days, rules.escalate_days)
    names = await user_names({row.person_id for found in late.values() for row in found})
    for boss, found in late.items():
        if not boss:
            continue
        lines = ["【培训逾期】以下人员未按期完成培训，请督促："]
        lines += [f"{names.get(r.person_id, r.person_id)}《{titles.get(r.course, r.course)}》"
                  f"截止{r.due_on:%m月%d日}，已逾期{(today - r.due_on).days}天"
                  for r in found if r.due_on]
        messages.append(Queued(f"train-late:{boss}:{today}", Text(fit(lines, room=1800)),
                               [boss]))
    return messages


async def _draw_practicals(rules: TrainingRules, courses: dict[str, CourseSpec],
                           today: date) -> list[Queued]:
    """Of the passes waiting, a share of each department's (at least one) is drawn; the rest
    are passed over. Each drawn person's supervisor gets the card."""
    rows = await pending()
    if not rows:
        return []
    by_department: dict[str | None, list[PracticalCheck]] = defaultdict(list)
    for row in rows:
        by_department[row.department_id].append(row)
    drawn: list[PracticalCheck] = []
    for group in by_department.values():
        drawn += _sample(group, max(1, math.ceil(len(group) * rules.practical_share)))
    chains = await chains_of([r.person_id for r in drawn])
    managers = await people_with(Role.SAFETY_MANAGER)
    # The supervisor checks; someone without one, a safety manager.
    asked = [(r, boss[0]) for r in drawn if (boss := chains[r.person_id] or managers)]
    chosen = {r.id for r, _ in asked}
    await mark_drawn(asked, [r for r in rows if r.id not in chosen])
    names = await user_names([r.person_id for r, _ in asked])
    by = today + timedelta(days=rules.practical_days)
    messages = []
    for row, checker in asked:
        spec = courses.get(row.course)
        title = spec.title if spec else row.course
        who = names.get(row.person_id, row.person_id)
        messages.append(Queued(f"train-prac:{row.id}", Card(
            task_id=f"prac-{row.id}", title="实操抽查",
            description=f"{who}已通过《{title}》线上考试，请在{by:%m月%d日}前到现场抽查其实际操作。",
            fields=(("人员", who), ("课程", title), ("通过日期", f"{row.passed_on:%Y-%m-%d}"),
                    ("抽查期限", f"{by:%Y-%m-%d}")),
            buttons=(Button("合格", f"train:prac:{row.id}:{row.token}:yes"),
                     Button("不合格", f"train:prac:{row.id}:{row.token}:no", style=2))),
            [checker]))
    return messages


async def run_weekly(rules: TrainingRules, start: datetime, end: datetime, today: date,
                     now: datetime, platform: str) -> int:
    """The week [start, end)'s groups: catch-up courses for the weak ones, their supervisors
    told why, and the figures to the safety managers; how many messages."""
    figures = await week_figures(start, end, today)
    if not figures:
        return 0
    courses = {c.code: c for c in await active_courses()}
    departments = await department_names()
    messages: list[Queued] = []
    weak_lines = []
    for g in figures:
        reasons = g.weak(rules.weak)
        spec = courses.get(g.course)
        if not reasons or spec is None:
            continue
        group = f"{departments.get(g.department_id or '', '未分部门')}·{g.post or '未定岗位'}"
        catchup = courses.get(spec.catchup, spec)
        due_on = today + timedelta(days=rules.weak.catchup_days)
        people = await members(g.department_id, g.post)
        why = f"{group}《{spec.title}》：{'，'.join(reasons)}"
        given = await create_assignment(
            catchup.code, group, due_on, "scheduler", Reason.CATCHUP, why, people, now,
            rules.remind_days, rules.escalate_days)
        weak_lines.append(f"> {why}；已布置《{catchup.title}》{len(given)}人")
        missed = "；".join(f"“{_question_text(spec, q)}”（错{n}次）" for q, n in g.missed)
        told = (f"【培训薄弱】{why}。" + (f"错得最多的题：{missed}。" if missed else "")
                + f"已为该组{len(given)}人布置补强课程《{catchup.title}》，截止"
                f"{due_on:%m月%d日}，请督促完成。")
        for boss in await supervisors_of(people):
            messages.append(Queued(f"train-weak:{boss}:{g.course}:{g.department_id}:{g.post}:"
                                   f"{today}", Text(fit(told.split("\n"), room=1800)), [boss]))
        if given:
            messages.append(Queued(f"train-catchup:{g.course}:{g.department_id}:{g.post}:"
                                   f"{today}", Text(
                f"【补强课程】您所在的{group}近一周《{spec.title}》测验情况不够理想，已为您布置"
                f"《{catchup.title}》，请在{due_on:%m月%d日}前完成。发送“学习”开始。"), given))
    managers = await people_with(Role.SAFETY_MANAGER)
    if managers:
        messages.append(Queued(f"train-week:{today}", Markdown(fit(
            _week_lines(figures, departments, courses, weak_lines, start), room=2000)),
            managers))
    return await enqueue_many(messages, now=now, platform=platform)


def _question_text(spec: CourseSpec, qid: str) -> str:
    for level in spec.levels:
        for q in level.questions:
            if q.id == qid:
                return q.text[:24] + ("…" if len(q.text) > 24 else "")
    return qid


def _week_lines(figures: Sequence[GroupFigures], departments: dict[str, str],
                courses: dict[str, CourseSpec], weak: Sequence[str], start: datetime
                ) -> list[str]:
    lines = [f"**培训周报（{start:%m月%d日}起一周）**"]
    if weak:
        lines += ["**薄弱小组**", *weak]
    lines.append("**各小组**（测验次数 / 通过率 / 平均分 / 到期完成率）")
    for g in figures:
        spec = courses.get(g.course)
        lines.append(f"> {departments.get(g.department_id or '', '未分部门')}·{g.post or '—'}"
                     f"《{spec.title if spec else g.course}》：{g.attempts} / "
                     f"{g.pass_rate:.0%} / {g.mean:.0f} / {g.completion:.0%}")
    return lines


# ---------------------------------------------------------------------------------------------
# Reports


async def digest_lines(today: date) -> list[str]:
    """For the safety managers' digest: the courses overdue, and the practical checks
    waiting; nothing when there are none."""
    found = await overdue_courses(today, LISTED)
    waiting = await practicals_waiting()
    lines = [f"> 逾期未完成《{o.title}》：{o.people}人（{'、'.join(o.names)}"
             f"{'，……' if o.people > len(o.names) else ''}）" for o in found[:LISTED]]
    if len(found) > LISTED:
        lines.append(f"> 另有{len(found) - LISTED}门课程有逾期，发送“我的培训”或导出台账查看。")
    if waiting:
        lines.append(f"> 待完成的实操抽查：{waiting}项")
    return ["**培训**", *lines] if lines else []


async def month_lines(start: datetime, end: datetime, first: date, last: date,
                      today: date) -> list[str]:
    m = await month_figures(start, end, first, last, today)
    if m.empty:
        return []
    rate = f"{m.quizzes_passed / m.quizzes:.0%}" if m.quizzes else "—"
    return ["**培训**",
            f"> 完成课程：{m.courses_passed}人次（{m.people}人），共{m.hours:g}学时",
            f"> 闯关测验：{m.quizzes}次，通过率{rate}",
            f"> 实操抽查：合格{m.practical_passed}人次，不合格{m.practical_failed}人次",
            f"> 补强课程：{m.catchups}次；当前逾期未完成：{m.overdue}人次"]
