"""Training benchmark: quizzes answered through the chat at a person's pace, and the weekly
weak-group job, on PostgreSQL.

(a) **Quizzes through the chat.** The service as deployed (`--targets split`: `safetybot serve
--no-workers` + `safetybot work` under nice 10; `single`: `serve`), the WeCom simulator in this
process, the demo courses of config/training/ loaded (`bot.training.load_training`). `--people`
people (焊工, 电工 and 维修工 of ten departments, with profiles, team leads, three safety
managers) each send `学习 动火作业安全`, turn the lesson's screens with `下一页` until the quiz
starts, and answer its questions one card at a time: single-choice and 判断 questions by pressing
the card's button (`train:quiz:<attempt>:<position>:<token>:<letter>`), multiple-choice ones by
typing the letters (`AC`). A person reads a screen and answers a question in `--think` seconds
(uniform, 5–15 by default) after the previous step's last reply arrived; the people start spread
evenly over `--ramp` seconds and keep going for `--minutes` after it. Each answer is the right
one with probability `--right` (what the attempt's question order, read from the database once
per attempt, says is right), else a random valid one (a random letter; for multiple choice a
random non-empty set), so some levels are failed. After a score a person goes on as the bot says
(`学习` again for the next level, or, after a failure, once more to meet the 30-minute retry
wait), then takes the next course (有限空间作业安全, then 三级安全教育·车间级).

An answer's latency runs from its scheduled send (open loop: a late send counts) to the moment
the simulator accepted the reply that follows it, `✅ 回答正确`/`❌ 回答错误 … 解析`. Target: p95
under 300 ms with 500 people. The `学习` and `下一页` steps are part of the load and reported
beside it. After the paced run, `--burst` people who were left at an open question answer it at
the same instant: a stress case, reported beside the target, not as it.

(b) **The weekly weak-group job** (`Jobs._training_week`, what the first tick of a Monday after
the digest time runs: the ISO week's claim, `week_figures`, then catch-up courses for the weak
groups, their supervisors told, the safety managers' weekly figures). `--staff` people in
`--departments` departments × ten posts, with profiles and a chain of supervisors;
`--answers` quiz answers in the week before the Monday (in finished attempts of six questions,
each group strong or, `--weak` of them, weak in a course), `--earlier` answers in the week
before that, and enrolments due this year before the Monday. Loaded with COPY. Timed over
`--rounds` rounds from the same state (what a round wrote is deleted: assignments, catch-up
enrolments, outbox rows, the week's claim), after one warm-up, each round on connections of its
own (the job runs once a week: each statement is the first of its kind on its connection); and
`week_figures` alone, the same way and then eight times on one connection (from the sixth,
PostgreSQL may use a generic plan), with each of its statements under EXPLAIN ANALYZE. Target:
under 5 s.

    PYTHONPATH=. .venv/bin/python benchmarks/training_bench.py [--parts quiz,weekly]
        [--people 500] [--minutes 5] [--ramp 120] [--think 5-15] [--right 0.8] [--burst 100]
        [--targets split,single] [--latency 0.05] [--pool-size 10] [--worker-nice 10]
        [--py-spy PATH] [--staff 10000] [--departments 20] [--answers 1000000]
        [--earlier 1000000] [--weak 0.1] [--rounds 5] [--seed 1] [--admin-dsn DSN]

PostgreSQL is the server at `--admin-dsn`; each part gets a fresh database of the run's own,
migrated, dropped at the end (also on failure, Ctrl-C or SIGTERM, after the service's processes
are stopped). Prints Markdown on stdout; exits 2 when a target is missed, 1 when the run could
not be set up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import random
import re
import signal
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.callback_bench import (  # noqa: E402
    BenchError,
    code_version,
    fresh_database,
    log_summary,
    machine_info,
    median,
    run_bench,
)
from benchmarks.emergency_bench import STEP_TIMEOUT, wait_idle  # noqa: E402
from benchmarks.qualification_bench import first_tick, scheduler_metrics  # noqa: E402
from benchmarks.report_bench import (  # noqa: E402
    BenchSimulator,
    Target,
    make_targets,
    process_cpu,
    start_target,
    text_of,
)
from benchmarks.tick_bench import nearest_rank  # noqa: E402
from bot.db import POSTGRES_POOL_SIZE, migrate, open_database  # noqa: E402
from bot.media.folder import FolderStore  # noqa: E402
from bot.qualification import load_rules  # noqa: E402
from bot.scheduling import load_policy  # noqa: E402
from bot.settings import SHIPPED_CONFIG, Settings, load_settings  # noqa: E402
from bot.training import load_training, load_training_rules, parse_courses  # noqa: E402
from models.catalog import load_catalog  # noqa: E402
from models.training.courses import LETTERS, CourseSpec, Question, QuestionType  # noqa: E402
from models.training.learning import Answer, Asked, Attempt  # noqa: E402
from models.training.rules import TrainingRules  # noqa: E402
from scheduler.jobs import Jobs  # noqa: E402
from simulator.wecom import Delivered  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
ANSWER_TARGET_MS = 300.0
WEEK_TARGET_MS = 5000.0
COURSES_DIR = SHIPPED_CONFIG / "training"
RULES_FILE = SHIPPED_CONFIG / "training.toml"
MANAGERS = ("sm01", "sm02", "sm03")
REPLY_TIMEOUT = 60.0         # seconds a person waits for a step's replies before giving up
LAG_EVERY = 0.1              # the event-loop lag probe's period, seconds


def int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def courses() -> dict[str, CourseSpec]:
    """The demo courses, as `load_training` stores them (no pictures in them)."""
    specs, _ = parse_courses(COURSES_DIR, load_training_rules(RULES_FILE).pass_mark)
    return {c.code: c for c in specs}


def course_titled(specs: dict[str, CourseSpec], title: str) -> CourseSpec:
    return next(c for c in specs.values() if c.title == title)


@contextlib.asynccontextmanager
async def orm(dsn: str) -> AsyncIterator[None]:
    ctx = await open_database(dsn)
    try:
        with ctx:
            yield
    finally:
        await ctx.close_connections()


async def load_courses(dsn: str, media: Path) -> None:
    async with orm(dsn):
        await load_training(COURSES_DIR, load_training_rules(RULES_FILE).pass_mark,
                            FolderStore(media), datetime.now(UTC))


# ---------------------------------------------------------------------------------------------
# (a) The plant of the chat part: learners of the hot-work posts, their leads, the managers

LEARN_POSTS = ("焊工", "电工", "维修工")          # the posts 动火作业安全 is for
LEARN_DEPARTMENTS = 10
TEAM = 25
COURSE_ORDER = ("动火作业安全", "有限空间作业安全", "三级安全教育·车间级")
WARM_UP = 3                  # people who take a level, unmeasured, before the clock starts
QUESTION = re.compile(r"第(\d+)关 第(\d+)/(\d+)题 · (单选题|多选题|判断题)")
OPTION_LINE = re.compile(r"^> ([A-F])：", re.MULTILINE)
TYPES = {"单选题": QuestionType.SINGLE, "多选题": QuestionType.MULTIPLE,
         "判断题": QuestionType.JUDGE}
DEPLOYMENTS = {"split": "`serve --no-workers` + `work`", "single": "`serve`"}
STAGES = ("callback → stored", "stored → handler", "handler → reply accepted")


def learner(n: int) -> str:
    return f"xy{n:05d}"


def lead_of(n: int) -> str:
    return f"bz{n // TEAM:04d}"


async def load_learners(conn: asyncpg.Connection, total: int) -> None:
    """`total` learners (the first WARM_UP of each target's share warm up), a lead for every
    TEAM of them, three safety managers; departments and profiles (hired two years ago)."""
    departments = [(f"D{d:02d}", f"{d + 1}号车间") for d in range(LEARN_DEPARTMENTS)]
    await conn.copy_records_to_table("department", records=departments, columns=("id", "name"))
    users: list[tuple[Any, ...]] = [
        (m, f"安全员{m[-1]}", None, '["safety_manager"]', None) for m in MANAGERS]
    leads = sorted({lead_of(n) for n in range(total)})
    users += [(ld, f"班长{ld[2:]}", departments[int(ld[2:]) % LEARN_DEPARTMENTS][0],
               '["worker", "reviewer"]', MANAGERS[0]) for ld in leads]
    users += [(learner(n), f"学员{n}", departments[(n // TEAM) % LEARN_DEPARTMENTS][0],
               '["worker"]', lead_of(n)) for n in range(total)]
    await conn.executemany(
        "INSERT INTO org_user (id, name, department_id, roles, supervisor_id, mobile, active, "
        "platform, platform_id, source) VALUES ($1, $2, $3, $4, $5, '', true, '', '', "
        "'roster')", users)
    hired = datetime.now(TZ).date() - timedelta(days=730)
    await conn.copy_records_to_table("person_profile", records=[
        (learner(n), LEARN_POSTS[n % len(LEARN_POSTS)], hired, hired, None, "", "")
        for n in range(total)], columns=("person_id", "post", "hired_on", "post_since",
                                         "contractor_id", "suspended", "blacklisted"))
    await conn.execute("VACUUM ANALYZE")


# ---------------------------------------------------------------------------------------------
# (a) A person in the chat


@dataclass(frozen=True)
class Pace:
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.low:g}–{self.high:g} s"


def pace(text: str) -> Pace:
    low, _, high = text.partition("-")
    return Pace(float(low), float(high or low))


@dataclass(frozen=True)
class Action:
    kind: str                     # 学习, 下一页, click, typed
    text: str = ""
    task_id: str = ""
    key: str = ""

    @property
    def answer(self) -> bool:
        return self.kind in ("click", "typed")


@dataclass
class Step:
    """One callback a person sent; times in s from its scheduled send (`due`, monotonic)."""

    person: str
    kind: str
    phase: str
    due: float
    late: float = math.nan        # sent after the due time
    ack: float = math.nan         # the callback's HTTP answer
    first: float = math.nan       # the first reply accepted (an answer's: ✅/❌ 解析)
    last: float = math.nan        # the step's last reply accepted
    right: bool | None = None     # an answer the bot called right
    error: str = ""


def kind_of(message: Delivered) -> str:
    text = text_of(message)
    if QUESTION.search(text) and (message.msgtype == "template_card"
                                  or text.startswith("**第")):
        return "card"
    if text.startswith(("✅", "❌")):
        return "verdict"
    if "回复“下一页”" in text:
        return "screen"
    if "测验开始" in text or "继续上次的测验" in text or "上次的测验中断太久" in text:
        return "lead"
    if "测验结束" in text:
        return "score"
    if "后可以重考" in text:
        return "retry"
    return "other"


TERMINAL = ("card", "screen", "score", "retry")


@dataclass
class Tally:
    """What the people went through, from the bot's words."""

    passed: int = 0               # levels passed
    failed: int = 0               # levels failed
    courses: int = 0              # courses passed
    retry_waits: int = 0          # 学习 answered with the retry wait
    out_of_courses: int = 0       # people who had nothing left to take
    attempts_read: int = 0        # attempt rows the people read to know the right answer


class Person:
    """One learner: sends a step, reads its replies until the last, thinks, sends the next."""

    def __init__(self, sim: BenchSimulator, pid: str, rng: random.Random, think: Pace,
                 right: float, specs: dict[str, CourseSpec], pool: asyncpg.Pool,
                 tally: Tally) -> None:
        self.sim, self.pid, self.rng, self.think, self.right = sim, pid, rng, think, right
        self.specs, self.pool, self.tally = specs, pool, tally
        self.queue = list(COURSE_ORDER)
        self.course = self.queue.pop(0)
        self.seen = 0
        self.steps: list[Step] = []
        self.parked: Delivered | None = None      # the open question left when the run ended
        self.order: tuple[int, str, int, list[list[str]]] | None = None   # id, course, level,
        self.in_quiz = False

    def first(self) -> Action:
        return Action("学习", f"学习 {self.course}")

    async def run(self, start: float, ramp_end: float, end: float) -> None:
        """Steps from `start` until `end`; an open question at the end is kept for the burst."""
        action: Action | None = self.first()
        due = start
        while action is not None:
            last = await self.step(action, due, "ramp" if due < ramp_end else "steady")
            if last is None:
                return
            due = last.at + self.rng.uniform(self.think.low, self.think.high)
            if due >= end:
                self.parked = last if kind_of(last) == "card" else None
                return
            action = await self.next(last)

    async def step(self, action: Action, due: float, phase: str) -> Delivered | None:
        """At `due`, the callback; then its replies until the last one. None on a failure."""
        step = Step(self.pid, action.kind, phase, due)
        self.steps.append(step)
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        step.late = time.monotonic() - due
        user = self.sim.user(self.pid)
        try:
            sent = await (user.clicks(action.task_id, action.key) if action.kind == "click"
                          else user.says(action.text))
        except (aiohttp.ClientError, TimeoutError) as exc:
            step.error = f"callback failed: {exc!r}"
            return None
        step.ack = time.monotonic() - due
        if sent.status != 200:
            step.error = f"callback answered {sent.status}"
            return None
        while True:
            try:
                message = await self.sim.message(self.pid, self.seen, REPLY_TIMEOUT)
            except TimeoutError:
                step.error = f"{action.kind}: no reply within {REPLY_TIMEOUT:.0f} s"
                return None
            self.seen += 1
            kind = kind_of(message)
            if math.isnan(step.first):
                step.first = message.at - due
                if action.answer:
                    if kind != "verdict":
                        step.error = f"answered {text_of(message)[:40]!r}"
                        return None
                    step.right = text_of(message).startswith("✅")
            if kind in TERMINAL:
                step.last = message.at - due
                return message
            if kind == "other":
                step.error = f"{action.kind}: answered {text_of(message)[:40]!r}"
                return None

    async def next(self, last: Delivered) -> Action | None:
        """What a person does after reading `last`."""
        kind, text = kind_of(last), text_of(last)
        if kind == "card":
            action = await self.answer(last)
            self.in_quiz = True
            return action
        self.in_quiz = False
        if kind == "screen":
            return Action("下一页", "下一页")
        if kind == "score":
            if "未通过" in text:
                self.tally.failed += 1
            else:
                self.tally.passed += 1
            if "恭喜通过" in text:
                self.tally.courses += 1
                return self.next_course()
            return Action("学习", f"学习 {self.course}")    # the next level, or the retry wait
        self.tally.retry_waits += 1
        return self.next_course()

    def next_course(self) -> Action | None:
        if not self.queue:
            self.tally.out_of_courses += 1
            return None
        self.course = self.queue.pop(0)
        return self.first()

    async def answer(self, card: Delivered) -> Action:
        """A right answer with probability `right`, else a random valid one; a press of the
        card's button, or the letters typed for multiple choice."""
        text = text_of(card)
        found = QUESTION.search(text)
        assert found is not None
        position, qtype = int(found[2]) - 1, TYPES[found[4]]
        buttons: list[tuple[str, str]] = []
        task_id = ""
        if card.msgtype == "template_card":
            tc = card.body["template_card"]
            buttons = [(b["text"], b["key"]) for b in tc.get("button_list", [])]
            task_id = str(tc["task_id"])
            options = len(buttons)
        else:
            options = len(OPTION_LINE.findall(text))
        if self.rng.random() < self.right:
            letters = await self.right_letters(position, buttons)
        elif qtype is QuestionType.MULTIPLE:
            picked = self.rng.sample(LETTERS[:options], self.rng.randint(1, options))
            letters = "".join(sorted(picked))
        else:
            letters = self.rng.choice(LETTERS[:options])
        if qtype is QuestionType.MULTIPLE:
            return Action("typed", letters)
        key = next(k for _, k in buttons if k.endswith(f":{letters}"))
        return Action("click", task_id=task_id, key=key)

    async def right_letters(self, position: int, buttons: Sequence[tuple[str, str]]) -> str:
        """The shown letters of the right answer: the attempt's order, read once an attempt."""
        pressed = int(buttons[0][1].split(":")[2]) if buttons else None
        if (self.order is None or not self.in_quiz
                or (pressed is not None and pressed != self.order[0])):
            row = await self.pool.fetchrow(
                'SELECT id, course, level, "order" FROM training_attempt WHERE person_id = $1 '
                "AND finished_at IS NULL ORDER BY id DESC LIMIT 1", self.pid)
            if row is None:
                raise BenchError(f"{self.pid}: a question card but no open attempt")
            self.tally.attempts_read += 1
            self.order = (row["id"], row["course"], row["level"], json.loads(row["order"]))
        _, course, level, order = self.order
        qid, shown = order[position]
        question = self.specs[course].question(level, qid)
        asked = Asked(question, tuple(question.options[int(i)] for i in shown), shown)
        return asked.shown_letters(question.answer)


class LagProbe:
    """How late this process's event loop wakes a sleeper: the driver's own queue."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            asked = time.monotonic()
            await asyncio.sleep(LAG_EVERY)
            self.lags.append((time.monotonic() - asked - LAG_EVERY) * 1000)

    def __enter__(self) -> LagProbe:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


@dataclass(frozen=True)
class Times:
    """Per person, their inbox rows in order: received_at, processed_at (POSIX s)."""

    rows: dict[str, list[tuple[float, float]]]


async def inbox_times(dsn: str, people: Sequence[str]) -> Times:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT user_id, received_at, processed_at FROM inbox_event WHERE user_id = "
            "ANY($1::text[]) ORDER BY id", list(people))
    finally:
        await conn.close()
    found: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in rows:
        done = r["processed_at"].timestamp() if r["processed_at"] else math.nan
        found[r["user_id"]].append((r["received_at"].timestamp(), done))
    return Times(dict(found))


@dataclass
class QuizRun:
    target: str
    people: int
    steps: list[Step]
    wall: float                              # the paced run: first start to the last reply
    steady_seconds: float
    cpu: dict[str, float]                    # CPU s during the paced run, by process
    burst_cpu: dict[str, float]
    lags: list[float]                        # the driver's event-loop lag probes, ms
    tally: Tally
    stages: dict[str, dict[str, list[float]]]   # per phase: ms of each of STAGES
    answers_stored: int
    answers_sent: int
    dropped: int
    outbox: dict[str, list[float]]           # the paced run's messages by kind: queued → done, ms
    parked: int                              # people left at an open question at the end
    burst: int


def stage_times(people: Sequence[Person], times: Times, offset: float
                ) -> dict[str, dict[str, list[float]]]:
    """Where each answer's time went, per phase (a person's steps and inbox rows in order)."""
    found: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for p in people:
        rows = times.rows.get(p.pid, [])
        steps = [s for s in p.steps if not math.isnan(s.ack)]
        if len(rows) != len(steps):
            continue
        for s, (stored, handled) in zip(steps, rows, strict=True):
            if s.kind not in ("click", "typed") or s.error:
                continue
            sent = s.due + s.late + offset
            for stage, ms in zip(STAGES, (stored - sent, handled - stored,
                                          s.due + s.first + offset - handled), strict=True):
                found[s.phase][stage].append(ms * 1000)
    return found


async def outbox_times(dsn: str, start: float, end: float) -> dict[str, list[float]]:
    """The messages queued between `start` and `end` (POSIX s), by kind: created → done, ms."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT kind, created_at, done_at FROM outbox_message WHERE created_at >= $1 "
            "AND created_at < $2 AND done_at IS NOT NULL",
            datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC))
    finally:
        await conn.close()
    found: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        found[r["kind"]].append((r["done_at"] - r["created_at"]).total_seconds() * 1000)
    return dict(found)


async def warm_up(sim: BenchSimulator, people: Sequence[Person]) -> None:
    """Each takes level 1 of 动火作业安全 at once, unmeasured: the service's first queries."""
    async def one(p: Person) -> None:
        action: Action | None = p.first()
        while action is not None:
            last = await p.step(action, time.monotonic(), "warm-up")
            if last is None:
                raise BenchError(f"warm-up {p.pid}: {p.steps[-1].error}")
            if kind_of(last) in ("score", "retry"):
                return
            action = await p.next(last)
    await asyncio.gather(*(one(p) for p in people))


async def quiz_target(sim: BenchSimulator, target: Target, args: argparse.Namespace, dsn: str,
                      specs: dict[str, CourseSpec], first: int, index: int) -> QuizRun:
    """Start the deployment, warm it up, let the scheduler's first tick pass, then the people
    at their pace and the burst; stop it."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    tally = Tally()
    rng = random.Random(f"{args.seed}:{target.name}")

    def person(n: int, tally: Tally) -> Person:
        pid = learner(n)
        return Person(sim, pid, random.Random(f"{args.seed}:{pid}"), args.think, args.right,
                      specs, pool, tally)

    warm = [person(first + n, Tally()) for n in range(WARM_UP)]
    people = [person(first + WARM_UP + n, tally) for n in range(args.people)]
    sim.callback_url = target.base + "/wecom/callback"
    children, profiler = await start_target(target, args.logs, args, index)
    try:
        print(f"{target.name}: warming up, waiting for the scheduler's first tick …",
              file=sys.stderr)
        await warm_up(sim, warm)
        tick = load_settings({}).schedule.tick_seconds
        await first_tick(scheduler_metrics(target), tick + STEP_TIMEOUT)
        await wait_idle(dsn, STEP_TIMEOUT)
        gc.collect()
        gc.freeze()
        print(f"{target.name}: {args.people} people over {args.ramp:g} s, then "
              f"{args.minutes:g} min …", file=sys.stderr)
        order = list(people)
        rng.shuffle(order)
        before = process_cpu(children)
        start = time.monotonic() + 1.0
        offset = time.time() - time.monotonic()
        ramp_end, end = start + args.ramp, start + args.ramp + args.minutes * 60
        with LagProbe() as probe:
            await asyncio.gather(*(p.run(start + args.ramp * k / len(order), ramp_end, end)
                                   for k, p in enumerate(order)))
            wall = time.monotonic() - start
            after = process_cpu(children)
            lags = list(probe.lags)
        await wait_idle(dsn, STEP_TIMEOUT)
        parked = [p for p in people if p.parked is not None]
        chosen = rng.sample(parked, min(args.burst, len(parked)))
        actions = [await p.answer(p.parked) for p in chosen if p.parked is not None]
        print(f"{target.name}: {len(chosen)} answers at once …", file=sys.stderr)
        burst_before = process_cpu(children)
        at = time.monotonic() + 0.5
        await asyncio.gather(*(p.step(a, at, "burst") for p, a in zip(chosen, actions,
                                                                      strict=True)))
        burst_after = process_cpu(children)
        await wait_idle(dsn, STEP_TIMEOUT)
    finally:
        for child in children.values():
            await child.stop()
        if profiler is not None:
            await profiler.stop(grace=10.0)
        await pool.close()
    steps = [s for p in people for s in p.steps]
    times = await inbox_times(dsn, [p.pid for p in people])
    sent = sum(1 for s in steps if s.kind in ("click", "typed") and not math.isnan(s.ack))
    conn = await asyncpg.connect(dsn)
    try:
        stored = await conn.fetchval(
            f"SELECT count(*) FROM {Answer._meta.db_table} WHERE person_id = ANY($1::text[])",
            [p.pid for p in people])
    finally:
        await conn.close()
    outbox = await outbox_times(dsn, ramp_end + offset, start + wall + offset)
    return QuizRun(target.name, len(people), steps, wall, wall - args.ramp,
                   {k: after[k] - before[k] for k in before},
                   {k: burst_after[k] - burst_before[k] for k in burst_before},
                   lags, tally, stage_times(people, times, offset), stored, sent,
                   len(sim.dropped), outbox, len(parked), len(chosen))


def percentiles(values: Sequence[float]) -> str:
    return (f"{len(values)} | {nearest_rank(values, 50):.0f} | {nearest_rank(values, 95):.0f} "
            f"| {nearest_rank(values, 99):.0f} | {max(values, default=math.nan):.0f}")


def quiz_report(args: argparse.Namespace, runs: Sequence[QuizRun]) -> bool:
    print(f"### (a) Quizzes at a person's pace, through the chat ({args.people} people)\n")
    print(f"People start evenly over {args.ramp:g} s, then go on for {args.minutes:g} min; "
          f"{args.think} (uniform) to read a screen or answer after the previous step's last "
          f"reply; an answer right with probability {args.right:g}, else a random valid one. "
          f"WeCom simulator in this process, {args.latency * 1000:.0f} ms per API call; pool "
          f"{args.pool_size} per process; `safetybot work` under nice {args.worker_nice}; "
          f"SAFETYBOT_OUTBOX_CONCURRENCY "
          f"{args.outbox_concurrency or Settings().outbox_concurrency}.\n")
    print(f"Latency: the scheduled send of the answer (a button press, or typed letters for "
          f"multiple choice) → the simulator accepted ✅/❌ 解析. Target: p95 < "
          f"{ANSWER_TARGET_MS:.0f} ms.\n")
    ok = True
    for run in runs:
        answers = [s for s in run.steps if s.kind in ("click", "typed")]
        print(f"#### {run.target} ({DEPLOYMENTS[run.target]})\n")
        print("| phase | answers | p50 ms | p95 ms | p99 ms | max ms | p95 / target | "
              "failed |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for phase, label in (("ramp", f"ramp (people starting over {args.ramp:g} s)"),
                             ("steady", f"steady ({args.minutes:g} min)"),
                             ("burst", f"burst ({run.parked} left at a question, "
                                       f"{run.burst} of them at once)")):
            done = [s.first * 1000 for s in answers if s.phase == phase and not s.error]
            failed = sum(1 for s in answers if s.phase == phase and s.error)
            ratio = nearest_rank(done, 95) / ANSWER_TARGET_MS
            print(f"| {label} | {percentiles(done)} | {ratio:.2f} | {failed} |")
        steady = [s.first * 1000 for s in answers if s.phase == "steady" and not s.error]
        errors = Counter(s.error for s in run.steps if s.error)
        ok &= bool(steady) and not errors and nearest_rank(steady, 95) < ANSWER_TARGET_MS
        print("\nEvery step of the paced run (ramp and steady), to its first reply and its "
              "last:\n")
        print("| step | count | p50 ms | p95 ms | p99 ms | max ms | last reply p95 ms |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        paced = [s for s in run.steps if s.phase != "burst" and not s.error]
        for kind, label in (("学习", "`学习 …`"), ("下一页", "`下一页`"),
                            ("click", "answer: button"), ("typed", "answer: typed letters")):
            mine = [s for s in paced if s.kind == kind]
            print(f"| {label} | {percentiles([s.first * 1000 for s in mine])} | "
                  f"{nearest_rank([s.last * 1000 for s in mine], 95):.0f} |")
        steady_steps = [s for s in paced if s.phase == "steady"]
        minutes = run.steady_seconds / 60
        print(f"\nSteady: {len(steady_steps) / minutes:.0f} steps a minute, "
              f"{len(steady) / minutes:.0f} answers a minute "
              f"({len(steady_steps) / run.steady_seconds:.1f} events/s). Levels passed "
              f"{run.tally.passed}, failed {run.tally.failed}; courses passed "
              f"{run.tally.courses}; retry waits met {run.tally.retry_waits}; people out of "
              f"courses {run.tally.out_of_courses}. Answers the bot called right: "
              f"{sum(1 for s in answers if s.right)} of {len(answers)}.")
        print(f"Answers stored (`training_answer`) {run.answers_stored:,} for "
              f"{run.answers_sent:,} sent; messages the simulator dropped over the per-member "
              f"limit: {run.dropped}.")
        print("\nWhere an answer's time goes, p50 / p95 ms (stored: the inbox row's "
              "`received_at`; handler: its `processed_at`):\n")
        print("| phase | callback answered | " + " | ".join(STAGES) + " |")
        print("|---|---:|" + "---:|" * len(STAGES))
        for phase in ("steady", "burst"):
            acks = [s.ack * 1000 for s in answers if s.phase == phase and not s.error]
            cells = [f"{nearest_rank(v, 50):.0f} / {nearest_rank(v, 95):.0f}"
                     for v in (acks, *(run.stages.get(phase, {}).get(k, []) for k in STAGES))]
            print(f"| {phase} | " + " | ".join(cells) + " |")
        queued = sum(len(v) for v in run.outbox.values())
        print(f"\nThe outbox in the steady part: {queued:,} messages "
              f"({queued / run.steady_seconds:.0f} a second); queued → done p50 / p95 ms: "
              + ", ".join(f"{kind} ({len(v):,}) {nearest_rank(v, 50):.0f} / "
                          f"{nearest_rank(v, 95):.0f}" for kind, v in sorted(run.outbox.items()))
              + ".")
        cpu = ", ".join(f"{name} {seconds:.1f}" for name, seconds in run.cpu.items())
        late = [s.late * 1000 for s in run.steps if s.phase != "burst"]
        print(f"\nCPU s during the paced run ({run.wall:.0f} s): {cpu}; the driver (people and "
              f"simulator, this process) used {run.cpu['bench+simulator'] / run.wall:.0%} of "
              f"a core. Its event loop woke a {LAG_EVERY * 1000:.0f} ms sleeper late by p50 "
              f"{nearest_rank(run.lags, 50):.1f} / p99 {nearest_rank(run.lags, 99):.1f} / max "
              f"{max(run.lags, default=math.nan):.0f} ms; sends left after their time by p99 "
              f"{nearest_rank(late, 99):.1f} / max {max(late, default=math.nan):.0f} ms.")
        print("CPU s during the burst: " + ", ".join(
            f"{name} {seconds:.1f}" for name, seconds in run.burst_cpu.items()))
        for error, n in errors.most_common(8):
            print(f"    {n:5d} × {error}")
        print()
    for log in sorted(args.logs.glob("*.log")):
        lines = log_summary(log)
        print(f"warnings/errors in {log.name}:" + ("" if lines else " none"))
        for line in lines:
            print("    " + line)
    return ok


async def quiz_part(args: argparse.Namespace, tmp: Path) -> tuple[dict[str, str], list[QuizRun]]:
    specs = courses()
    media = tmp / "media"
    per_target = WARM_UP + args.people
    total = per_target * len(args.targets)
    async with fresh_database(args.admin_dsn) as dsn:
        info = await machine_info(dsn)
        await migrate(dsn)
        conn = await asyncpg.connect(dsn)
        try:
            await load_learners(conn, total)
        finally:
            await conn.close()
        await load_courses(dsn, media)
        leads = sorted({lead_of(n) for n in range(total)})
        sim = BenchSimulator([*MANAGERS, *leads, *(learner(n) for n in range(total))])
        sim.latency = args.latency
        await sim.start()
        try:
            targets = make_targets(args, dsn, media, sim.base_url)
            if args.outbox_concurrency:
                for target in targets.values():
                    for env in (target.env, target.work_env):
                        if env is not None:
                            env["SAFETYBOT_OUTBOX_CONCURRENCY"] = str(args.outbox_concurrency)
            runs = [await quiz_target(sim, targets[name], args, dsn, specs, i * per_target, i)
                    for i, name in enumerate(args.targets)]
        finally:
            await sim.stop()
    return info, runs


# ---------------------------------------------------------------------------------------------
# (b) The weekly job: the plant


WEEK_TODAY = date(2026, 12, 14)                                 # a Monday
WEEK_NOW = datetime(2026, 12, 14, 9, 0, tzinfo=TZ)              # after the 08:20 digest time
WEEK_START = datetime(2026, 12, 7, tzinfo=TZ)
WEEK_END = datetime(2026, 12, 14, tzinfo=TZ)
POSTS = ("焊工", "电工", "维修工", "操作工", "叉车司机", "仓管员", "化验员", "巡检工", "装配工",
         "包装工")
CHUNK = 200_000               # answers generated and copied at a time
REPEATS = 8                   # week_figures run on one connection, to see the generic plans
ATTEMPT_COLUMNS = ("id", "person_id", "course", "level", "number", "token", "order", "at",
                   "correct", "department_id", "post", "started_at", "updated_at",
                   "finished_at", "score", "passed")
ANSWER_COLUMNS = ("key", "attempt_id", "person_id", "course", "question", "department_id",
                  "post", "chosen", "correct", "at")
ENROLMENT_COLUMNS = ("person_id", "course", "reason", "key", "assignment_id", "due_on", "chain",
                     "status", "done_on", "next_on", "sent", "created_at")


def staff_id(i: int) -> str:
    return f"w{i:05d}"


@dataclass
class Staff:
    """`people` people in groups (department × post) of equal size, each group led by a team
    lead, each department by its head; per group and course, how well it does."""

    people: int
    departments: int
    weak_share: float
    rng: random.Random
    specs: dict[str, CourseSpec]
    skill: dict[tuple[int, str], float] = field(default_factory=dict)
    completion: dict[int, float] = field(default_factory=dict)
    by_post: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_post = {post: [c.code for c in self.specs.values()
                               if c.for_post(post) and not c.catchup_only] for post in POSTS}
        for g in range(self.groups):
            for code in self.courses_of(g):
                weak = self.rng.random() < self.weak_share
                self.skill[g, code] = 0.55 if weak else self.rng.uniform(0.86, 0.97)
            weak = self.rng.random() < self.weak_share / 2
            self.completion[g] = 0.6 if weak else self.rng.uniform(0.85, 1.0)

    @property
    def groups(self) -> int:
        return self.departments * len(POSTS)

    def group(self, i: int) -> int:
        return i % self.groups

    def department(self, g: int) -> str:
        return f"D{g // len(POSTS):03d}"

    def post(self, g: int) -> str:
        return POSTS[g % len(POSTS)]

    def lead(self, g: int) -> str:
        return f"ld{g:04d}"

    def head(self, g: int) -> str:
        return f"dh{g // len(POSTS):03d}"

    def courses_of(self, g: int) -> list[str]:
        return self.by_post[self.post(g)]

    def chain(self, g: int) -> str:
        return json.dumps([self.lead(g), self.head(g), MANAGERS[0]])


async def load_staff(conn: asyncpg.Connection, staff: Staff) -> None:
    await conn.copy_records_to_table("department", records=[
        (f"D{d:03d}", f"{d + 1}号车间") for d in range(staff.departments)], columns=("id", "name"))
    users: list[tuple[Any, ...]] = [
        (m, f"安全员{m[-1]}", None, '["safety_manager"]', None) for m in MANAGERS]
    heads = sorted({staff.head(g) for g in range(staff.groups)})
    users += [(h, f"主任{h[2:]}", f"D{h[2:]}", '["worker", "reviewer"]', MANAGERS[0])
              for h in heads]
    users += [(staff.lead(g), f"班长{g}", staff.department(g), '["worker", "reviewer"]',
               staff.head(g)) for g in range(staff.groups)]
    users += [(staff_id(i), f"员工{i}", staff.department(staff.group(i)), '["worker"]',
               staff.lead(staff.group(i))) for i in range(staff.people)]
    await conn.copy_records_to_table("org_user", records=[
        (*u, "", True, "", "", "roster") for u in users],
        columns=("id", "name", "department_id", "roles", "supervisor_id", "mobile", "active",
                 "platform", "platform_id", "source"))
    hired = WEEK_TODAY - timedelta(days=900)
    profiles = [(staff_id(i), staff.post(staff.group(i)), hired, hired, None, "", "")
                for i in range(staff.people)]
    profiles += [(staff.lead(g), "班组长", hired, hired, None, "", "")
                 for g in range(staff.groups)]
    await conn.copy_records_to_table("person_profile", records=profiles, columns=(
        "person_id", "post", "hired_on", "post_since", "contractor_id", "suspended",
        "blacklisted"))


def enrolments(staff: Staff) -> Iterator[tuple[Any, ...]]:
    """Each person's yearly courses (due 31 December: not yet due) and one to three
    assignments due this year before the Monday, done as often as their group does them."""
    rng, created = staff.rng, datetime(WEEK_TODAY.year, 1, 2, 9, tzinfo=TZ)
    year_days = (WEEK_TODAY - date(WEEK_TODAY.year, 1, 1)).days
    for i in range(staff.people):
        pid, g = staff_id(i), staff.group(i)
        chain = staff.chain(g)
        for code in staff.courses_of(g):
            done = rng.random() < 0.6
            yield (pid, code, "yearly", f"year:{pid}:{code}:{WEEK_TODAY.year}", None,
                   date(WEEK_TODAY.year, 12, 31), chain, "done" if done else "open",
                   WEEK_TODAY - timedelta(days=rng.randint(1, 300)) if done else None,
                   None if done else date(WEEK_TODAY.year, 12, 28), "[]", created)
        for k in range(rng.randint(1, 3)):
            code = rng.choice(staff.courses_of(g))
            due = date(WEEK_TODAY.year, 1, 1) + timedelta(days=rng.randrange(year_days))
            done = rng.random() < staff.completion[g]
            yield (pid, code, "assigned", f"a0{k}:{pid}", None, due, chain,
                   "done" if done else "open",
                   due - timedelta(days=rng.randint(0, 10)) if done else None,
                   None, '["e1", "e2", "r1", "r3"]' if not done else "[]", created)


def wrong_letters(question: Question, rng: random.Random) -> str:
    n = len(question.options)
    while True:
        if question.type is QuestionType.MULTIPLE:
            picked = "".join(sorted(rng.sample(LETTERS[:n], rng.randint(1, n))))
        else:
            picked = rng.choice(LETTERS[:n])
        if picked != question.answer:
            return picked


class Quizzes:
    """Finished attempts of one level's six questions and their answers, ids from `first_id`,
    started uniformly in [start, end) (each taking a few minutes, finished before `end`)."""

    def __init__(self, staff: Staff, start: datetime, end: datetime, first_id: int) -> None:
        self.staff, self.start, self.end = staff, start, end
        self.next_id = first_id
        self.numbers: Counter[tuple[int, str, int]] = Counter()
        self.span = (end - start).total_seconds() - 3600

    def batch(self, answers: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """About `answers` answers (whole attempts), and their attempts."""
        staff, rng = self.staff, self.staff.rng
        attempts: list[tuple[Any, ...]] = []
        rows: list[tuple[Any, ...]] = []
        while len(rows) < answers:
            i = rng.randrange(staff.people)
            g = staff.group(i)
            code = rng.choice(staff.courses_of(g))
            spec = staff.specs[code]
            level = rng.randrange(len(spec.levels))
            questions = list(spec.levels[level].questions)
            rng.shuffle(questions)
            skill = staff.skill[g, code]
            aid, pid, dept, post = self.next_id, staff_id(i), staff.department(g), staff.post(g)
            self.next_id += 1
            self.numbers[i, code, level] += 1
            started = self.start + timedelta(seconds=rng.uniform(0, self.span))
            at, order, correct = started, [], 0
            for n, q in enumerate(questions):
                shown = [str(k) for k in range(len(q.options))]
                if q.type is not QuestionType.JUDGE:
                    rng.shuffle(shown)
                order.append([q.id, "".join(shown)])
                right = rng.random() < skill
                correct += right
                at += timedelta(seconds=rng.uniform(5, 30))
                rows.append((f"{aid}:{n}", aid, pid, code, q.id, dept, post,
                             q.answer if right else wrong_letters(q, rng), right, at))
            score = round(100 * correct / len(questions), 1)
            attempts.append((aid, pid, code, level, self.numbers[i, code, level],
                             f"{rng.getrandbits(32):08x}", json.dumps(order), len(questions),
                             correct, dept, post, started, at, at, score,
                             score >= spec.pass_mark))
        return attempts, rows


async def load_quizzes(conn: asyncpg.Connection, quizzes: Quizzes, answers: int) -> int:
    """`answers` answers and their attempts, copied a chunk at a time; the attempts' count."""
    left, attempts = answers, 0
    while left > 0:
        rows, found = quizzes.batch(min(CHUNK, left))
        await conn.copy_records_to_table("training_attempt", records=rows,
                                         columns=ATTEMPT_COLUMNS)
        await conn.copy_records_to_table("training_answer", records=found,
                                          columns=ANSWER_COLUMNS)
        left -= len(found)
        attempts += len(rows)
    return attempts


@dataclass
class WeekPlant:
    staff: Staff
    attempts: int             # in the week
    earlier_attempts: int
    enrolments: int
    seconds: float


async def load_week(conn: asyncpg.Connection, args: argparse.Namespace) -> WeekPlant:
    started = time.perf_counter()
    staff = Staff(args.staff, args.departments, args.weak, random.Random(args.seed),
                  courses())
    print(f"weekly job: {args.staff:,} people, {args.answers:,} + {args.earlier:,} answers: "
          "generating and loading …", file=sys.stderr)
    await load_staff(conn, staff)
    rows = list(enrolments(staff))
    await conn.copy_records_to_table("training_enrolment", records=rows,
                                     columns=ENROLMENT_COLUMNS)
    earlier = Quizzes(staff, WEEK_START - timedelta(days=7), WEEK_START, 1)
    before = await load_quizzes(conn, earlier, args.earlier)
    week = Quizzes(staff, WEEK_START, WEEK_END, earlier.next_id)
    attempts = await load_quizzes(conn, week, args.answers)
    await conn.execute("SELECT setval(pg_get_serial_sequence('training_attempt', 'id'), $1)",
                       week.next_id)
    await conn.execute("VACUUM ANALYZE")
    return WeekPlant(staff, attempts, before, len(rows), time.perf_counter() - started)


# ---------------------------------------------------------------------------------------------
# (b) The weekly job: the rounds


def make_jobs(media: Path) -> Jobs:
    """The scheduler with the shipped configuration, as `bot.app.scheduled_jobs` builds it."""
    settings = load_settings({})
    q = settings.qualification
    return Jobs(load_policy(settings.schedule, settings.tz),
                load_catalog(ROOT / "config" / "categories.toml"), FolderStore(media),
                "wecom", qualification=load_rules(Path(q.certificates_file),
                                                  Path(q.work_types_file)),
                training=load_training_rules(Path(settings.training.rules_file)))


async def reset_week(conn: asyncpg.Connection) -> None:
    """Back to Monday morning: nothing the job wrote is left."""
    await conn.execute("DELETE FROM training_enrolment WHERE reason = 'catchup'")
    await conn.execute("DELETE FROM training_assignment")
    await conn.execute("DELETE FROM outbox_delivery WHERE message_id IN (SELECT id FROM "
                       "outbox_message WHERE idempotency_key LIKE 'train-%')")
    await conn.execute("DELETE FROM outbox_message WHERE idempotency_key LIKE 'train-%'")
    await conn.execute("DELETE FROM job_run WHERE key LIKE 'training-week:%'")
    for name in ("training_enrolment", "training_assignment", "outbox_message",
                 "outbox_delivery", "job_run"):
        await conn.execute(f"VACUUM ANALYZE {name}")


@dataclass
class WeekRun:
    job_ms: list[float]
    figures_ms: list[float]
    again_ms: list[float]      # week_figures run REPEATS times on one connection
    messages: int
    deliveries: int
    groups: int
    weak: int
    catchups: int
    plans: list[tuple[str, float, list[str]]]     # per statement: its first words, ms, plan


class Statements:
    """The SQL `week_figures` sends, caught on their way (to EXPLAIN them as they are)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, list[Any]]] = []

    @contextlib.contextmanager
    def caught(self) -> Iterator[None]:
        client = type(Attempt._meta.db)
        original = client.execute_query_dict

        async def spy(db: Any, query: str, values: list[Any] | None = None) -> Any:
            self.seen.append((query, list(values or [])))
            return await original(db, query, values)

        client.execute_query_dict = spy    # type: ignore[method-assign,assignment]
        try:
            yield
        finally:
            client.execute_query_dict = original    # type: ignore[method-assign,assignment]


async def explain(conn: asyncpg.Connection, statements: Statements
                  ) -> list[tuple[str, float, list[str]]]:
    plans = []
    for query, values in statements.seen:
        rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {query}", *values)
        lines = [r[0] for r in rows]
        ms = next((float(m[1]) for line in lines
                   if (m := re.search(r"Execution Time: ([\d.]+) ms", line))), math.nan)
        plans.append((" ".join(query.split()[:8]), ms, lines))
    return plans


async def timed_round(dsn: str, work: Any) -> tuple[float, Any]:
    """`work()` timed in an ORM of its own, its connections new: the job runs once a week, so
    every statement it sends is the first of its kind on its connection (below)."""
    async with orm(dsn):
        await Attempt.filter(id=0).exists()           # the pool opened outside the timing
        started = time.perf_counter()
        result = await work()
        return (time.perf_counter() - started) * 1000, result


async def week_rounds(conn: asyncpg.Connection, dsn: str, jobs: Jobs, rounds: int) -> WeekRun:
    from models.training.groups import week_figures

    def figures() -> Any:
        return week_figures(WEEK_START, WEEK_END, WEEK_TODAY)

    job_ms, figures_ms = [], []
    messages = 0
    for r in range(rounds + 1):            # the first is a warm-up
        await reset_week(conn)
        elapsed, messages = await timed_round(dsn, lambda: jobs._training_week(WEEK_NOW))
        if not messages:
            raise BenchError("the weekly job queued nothing: no weak group, no managers?")
        if r:
            job_ms.append(elapsed)
    deliveries = await conn.fetchval(
        "SELECT count(*) FROM outbox_delivery d JOIN outbox_message m ON m.id = d.message_id "
        "WHERE m.idempotency_key LIKE 'train-%'")
    catchups = await conn.fetchval(
        "SELECT count(*) FROM training_enrolment WHERE reason = 'catchup'")
    weak = await conn.fetchval("SELECT count(*) FROM training_assignment")
    groups = 0
    for r in range(rounds + 1):
        elapsed, found = await timed_round(dsn, figures)
        groups = len(found)
        if r:
            figures_ms.append(elapsed)
    # The same statements again and again on one connection: from the sixth, PostgreSQL may
    # plan a prepared statement once for any parameters (a generic plan).
    statements = Statements()
    again = []
    async with orm(dsn):
        with statements.caught():
            for _ in range(REPEATS):
                started = time.perf_counter()
                await week_figures(WEEK_START, WEEK_END, WEEK_TODAY)
                again.append((time.perf_counter() - started) * 1000)
    statements.seen = statements.seen[:len(statements.seen) // REPEATS]
    plans = await explain(conn, statements)
    await reset_week(conn)
    return WeekRun(job_ms, figures_ms, again, messages, deliveries, groups, weak, catchups,
                   plans)


async def week_part(args: argparse.Namespace, tmp: Path
                    ) -> tuple[dict[str, str], WeekPlant, WeekRun]:
    jobs = make_jobs(tmp / "media-week")
    async with fresh_database(args.admin_dsn) as dsn:
        info = await machine_info(dsn)
        await migrate(dsn)
        await load_courses(dsn, tmp / "media-week")
        conn = await asyncpg.connect(dsn)
        try:
            plant = await load_week(conn, args)
            print(f"weekly job: {args.rounds} rounds …", file=sys.stderr)
            run = await week_rounds(conn, dsn, jobs, args.rounds)
        finally:
            await conn.close()
    return info, plant, run


def week_report(args: argparse.Namespace, plant: WeekPlant, run: WeekRun,
                rules: TrainingRules) -> bool:
    print(f"### (b) The weekly weak-group job ({args.staff:,} people, "
          f"{args.answers:,} answers in the week)\n")
    staff = plant.staff
    combos = sum(len(staff.courses_of(g)) for g in range(staff.groups))
    print(f"{staff.groups} groups ({args.departments} departments × {len(POSTS)} posts), "
          f"{combos} group-course pairs, {sum(s == 0.55 for s in staff.skill.values())} of "
          f"them weak by design; {plant.attempts:,} attempts finished in the week "
          f"({args.answers:,} answers) and {plant.earlier_attempts:,} the week before "
          f"({args.earlier:,}); {plant.enrolments:,} enrolments. Loaded in "
          f"{plant.seconds:.0f} s. Thresholds as shipped: pass rate "
          f"{rules.weak.pass_rate:.0%}, mean {rules.weak.mean_score:g}, completion "
          f"{rules.weak.completion:.0%}, at least {rules.weak.min_attempts} attempts.\n")
    print("| timed | rounds | median ms | min ms | max ms | median / target |")
    print("|---|---:|---:|---:|---:|---:|")
    m = median(run.job_ms)
    print(f"| `Jobs._training_week` (the whole job) | {len(run.job_ms)} | {m:.0f} | "
          f"{min(run.job_ms):.0f} | {max(run.job_ms):.0f} | {m / WEEK_TARGET_MS:.2f} |")
    f = median(run.figures_ms)
    print(f"| `week_figures` alone | {len(run.figures_ms)} | {f:.0f} | "
          f"{min(run.figures_ms):.0f} | {max(run.figures_ms):.0f} | {f / WEEK_TARGET_MS:.2f} |")
    first, later = run.again_ms[:5], run.again_ms[5:]
    print(f"| `week_figures`, runs 1–5 / 6–{REPEATS} on one connection | {REPEATS} | "
          f"{median(first):.0f} / {median(later):.0f} | {min(first):.0f} / {min(later):.0f} "
          f"| {max(first):.0f} / {max(later):.0f} | {median(later) / WEEK_TARGET_MS:.2f} |")
    print(f"\nEach round: {run.groups} groups with figures, {run.weak} weak (an assignment "
          f"each), {run.catchups:,} catch-up enrolments, {run.messages:,} messages "
          f"({run.deliveries:,} deliveries).\n")
    print("`week_figures`' statements under EXPLAIN ANALYZE, each the first of its kind on "
          "its connection (a custom plan), after the rounds:\n")
    print("| statement | execution ms |")
    print("|---|---:|")
    for words, ms, _ in run.plans:
        print(f"| `{words} …` | {ms:.0f} |")
    for words, _, lines in run.plans:
        print(f"\n```\n-- {words} …")
        for line in lines[:14]:
            print(line)
        print("```")
    return m < WEEK_TARGET_MS


# ---------------------------------------------------------------------------------------------
# The run


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--parts", default="quiz,weekly", help="quiz, weekly or both")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--admin-dsn", default="postgres://postgres@127.0.0.1:5432/postgres")
    quiz = p.add_argument_group("(a) quizzes through the chat")
    quiz.add_argument("--people", type=int, default=500)
    quiz.add_argument("--minutes", type=float, default=5.0, help="after the ramp")
    quiz.add_argument("--ramp", type=float, default=120.0, help="seconds over which people start")
    quiz.add_argument("--think", type=pace, default=pace("5-15"),
                      help="seconds to read a reply and send the next step, uniform LOW-HIGH")
    quiz.add_argument("--right", type=float, default=0.8,
                      help="probability that an answer is the right one (else random)")
    quiz.add_argument("--burst", type=int, default=100, help="answers sent at one instant")
    quiz.add_argument("--targets", default="split",
                      help="deployments: split (serve --no-workers + work), single (serve)")
    quiz.add_argument("--latency", type=float, default=0.05,
                      help="seconds per simulated API call")
    quiz.add_argument("--pool-size", type=int, default=POSTGRES_POOL_SIZE)
    quiz.add_argument("--outbox-concurrency", type=int, default=0, metavar="N",
                      help="SAFETYBOT_OUTBOX_CONCURRENCY of the service (0: its default, "
                           f"{Settings().outbox_concurrency})")
    quiz.add_argument("--worker-nice", type=int, default=10, metavar="N",
                      help="run `safetybot work` under `nice -n N` (0: not at all)")
    quiz.add_argument("--py-spy", type=Path, default=None, metavar="PATH",
                      help="py-spy binary: profile the process that handles the inbox")
    quiz.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out",
                      help="where the service's logs are kept")
    week = p.add_argument_group("(b) the weekly job")
    week.add_argument("--staff", type=int, default=10_000)
    week.add_argument("--departments", type=int, default=20)
    week.add_argument("--answers", type=int, default=1_000_000, help="in the week")
    week.add_argument("--earlier", type=int, default=1_000_000, help="in the week before")
    week.add_argument("--weak", type=float, default=0.1,
                      help="share of group-course pairs that do poorly")
    week.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    args.parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    if not args.parts or set(args.parts) - {"quiz", "weekly"}:
        p.error("--parts: quiz, weekly or both")
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if not args.targets or set(args.targets) - set(DEPLOYMENTS):
        p.error("--targets: split, single or both")
    if not 0 <= args.right <= 1:
        p.error("--right: a probability")
    if args.staff < args.departments * len(POSTS):
        p.error("--staff: at least one person a group")
    return args


async def bench(args: argparse.Namespace, code: str) -> int:
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    started = datetime.now(UTC).astimezone(TZ)
    args.logs = args.out / time.strftime("%Y%m%d-%H%M%S-training")
    info: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="safetybot-trainbench-") as tmp:
        week = None
        if "weekly" in args.parts:
            info, plant, run = await week_part(args, Path(tmp))
            week = (plant, run)
        quiz: list[QuizRun] = []
        if "quiz" in args.parts:
            args.logs.mkdir(parents=True, exist_ok=True)
            info, quiz = await quiz_part(args, Path(tmp))
    print("## Training benchmark\n")
    info = {"date": f"{started:%Y-%m-%d %H:%M} (Asia/Shanghai)", **info, "code": code}
    for key, value in info.items():
        print(f"- {key}: {value}")
    print(f"- settings: SAFETYBOT_POLL_SECONDS {Settings().poll_seconds:g} (the default)\n")
    ok = True
    if quiz:
        ok &= quiz_report(args, quiz)
    if week is not None:
        ok &= week_report(args, *week, load_training_rules(RULES_FILE))
    targets = []
    if quiz:
        targets.append(f"answers through the chat: steady p95 < {ANSWER_TARGET_MS:.0f} ms, "
                       "every step answered")
    if week is not None:
        targets.append(f"the weekly job's median < {WEEK_TARGET_MS / 1000:.0f} s")
    print(f"\n**Verdict: {'met' if ok else 'missed'}** ({'; '.join(targets)})")
    return 0 if ok else 2


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_bench("training_bench", bench(args, code_version()),
                     "processes stopped, database dropped")


if __name__ == "__main__":
    sys.exit(main())
