"""Emergency benchmark: one plan activation that calls 10,000 responders and 50 group chats,
then 10,000 acknowledgement clicks (issue 5; on DingTalk, issue 15).

End to end on PostgreSQL, against the service run as deployed (`safetybot serve`, or
`serve --no-workers` + `safetybot work`), through the platform's simulator running in this
process with `--latency` seconds per API call (50 ms) and the platform's limits: on WeCom 1,000
recipients a message/send and 30 messages a minute per member; on DingTalk 20 people a call
and 20 messages a minute per person.

A round: the commander sends `启动预案 压测泄漏 一级`, gets the confirmation card and clicks
确认启动 (t0). t_last is when the simulator accepted the last responder card and the last group
message. Beside it, the lower bound the limits allow, computed in the same run: the fewest API
calls that reach everyone (a card call per 1,000 responders on WeCom, per 20 on DingTalk; one
group send per group), in waves of as many calls as the service may have in flight
(SAFETYBOT_OUTBOX_CONCURRENCY), each wave taking the API latency. Targets: t_last - t0 within
twice the bound, and on WeCom within 2 s.

Then each of the 10,000 responders clicks 收到 (a bounded number of clicks in flight); the
clock stops when every Responder row has its answer, and the commander's 应急状态 board must say
已确认 10000/10000.

    .venv/bin/python benchmarks/emergency_bench.py [--platform wecom|dingtalk]
        [--dingtalk-mode stream|http] [--responders 10000] [--groups 50] [--rounds 3]
        [--targets split,single] [--latency 0.05] [--ack-concurrency 200]
        [--outbox-concurrency 8] [--py-spy PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.callback_bench import (  # noqa: E402
    PLATFORMS,
    BenchError,
    DingTalkBench,
    code_version,
    fmt,
    fresh_database,
    log_summary,
    machine_info,
    run_bench,
)
from benchmarks.report_bench import (  # noqa: E402
    BenchPeople,
    BenchSimulator,
    Target,
    make_targets,
    median,
    percentile_ms,
    process_cpu,
    run_command,
    start_target,
    text_of,
)
from bot.db import POSTGRES_POOL_SIZE  # noqa: E402
from bot.settings import Settings  # noqa: E402
from simulator import dingtalk  # noqa: E402

TRIGGER = "压测泄漏"
LEVEL = "一级"
PLAN_CODE = "BENCH"
SEED_RESPONDERS = 20         # in the roster when the plan is loaded: the groups' members
STEP_TIMEOUT = 120.0         # seconds to wait for one reply or for a broadcast to complete


# ---------------------------------------------------------------------------------------------
# The simulators: when each card and each group message was accepted, and each API call made


class Broadcasts:
    """Kept cheaply, as they happen, by either platform's simulator: each responder's latest
    card, the times the emergency cards of each activation were accepted, and the time of every
    API call. Each simulator below also says how its platform is reached and clicked."""

    platform: str
    card_recipients: int         # people one card call may name
    card_call: str               # that call and the group send, as the call log names them
    group_call: str
    within: float | None         # seconds: the platform's absolute target, if it has one

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.call_log: list[tuple[float, str]] = []
        self.cards: dict[int, list[float]] = {}          # activation id -> acceptance times
        self.latest_card: dict[str, dict[str, Any]] = {}  # member -> its latest card

    def _call(self, path: str) -> None:
        self.call_log.append((time.monotonic(), path))

    def _card(self, member: str, track: str, card: dict[str, Any], now: float) -> None:
        self.latest_card[member] = card
        if track.startswith("emg-"):                     # emg-<activation>-<random>[@batch]
            self.cards.setdefault(int(track.split("-")[1]), []).append(now)

    def group_messages_since(self, chats: Sequence[str], since: float) -> list[float]:
        """Per chat that has one, the time its first message at or after `since` arrived."""
        times = []
        for chat in chats:
            arrived = [m.at for m in self.chat_messages(chat)  # type: ignore[attr-defined]
                       if m.at >= since]
            if arrived:
                times.append(min(arrived))
        return times

    def calls_between(self, start: float, end: float) -> Counter[str]:
        return Counter(path for at, path in self.call_log if start <= at <= end)


class EmergencySimulator(Broadcasts, BenchSimulator):
    """WeCom (`_endpoint` and `_deliver` are private methods of `simulator/wecom.py`)."""

    platform = "wecom"
    card_recipients = 1000       # message/send's touser limit (chat-protocols.md §4.2)
    card_call, group_call = "message/send", "appchat/send"
    within = 2.0                 # issue 5

    def _endpoint(self, path: str, handler: Any, needs_token: bool) -> Any:
        inner = super()._endpoint(path, handler, needs_token)

        async def endpoint(request: web.Request) -> web.StreamResponse:
            self._call(path)
            response: web.StreamResponse = await inner(request)
            return response
        return endpoint

    def _deliver(self, member: str, msgtype: str, body: dict[str, Any], now: float) -> None:
        super()._deliver(member, msgtype, body, now)
        if msgtype == "template_card":
            card = body["template_card"]
            self._card(member.lower(), str(card.get("task_id") or ""), card, now)

    @property
    def refused(self) -> str:
        return f"{len(self.dropped)} dropped over the per-member limit"

    @property
    def per_minute(self) -> int:
        return self.per_member_per_minute

    def service_env(self) -> dict[str, str]:
        return {}

    def mark(self) -> int:
        return 0

    async def reached(self, base: str, mark: int) -> None:
        self.callback_url = base + "/wecom/callback"

    async def plan_groups(self, dsn: str, chats: Sequence[str]) -> None:
        """The service creates the plan's chats (appchat/create) when it starts sending."""
        async def made() -> bool:
            return all(chat in self.chats for chat in chats)
        await until(made, STEP_TIMEOUT, "the plan's group chats created")

    text_of = staticmethod(text_of)

    @staticmethod
    def card_of(message: Any) -> dict[str, Any]:
        card: dict[str, Any] = message.body["template_card"]
        return card

    @staticmethod
    def buttons(card: dict[str, Any]) -> tuple[str, dict[str, str]]:
        """A card's id to click it by, and its buttons' keys by their text."""
        return str(card["task_id"]), {b["text"]: b["key"] for b in card["button_list"]}

    async def press(self, user: str, track: str, key: str) -> int:
        return (await self.user(user).clicks(track, key)).status


class DingTalkEmergencySimulator(Broadcasts, BenchPeople, DingTalkBench):
    """DingTalk, in Stream mode or posting HTTP callbacks (`_take_fault`, the first step of every
    API call, and `_deliver` are private methods of `simulator/dingtalk.py`)."""

    platform = "dingtalk"
    # batchSend's userIds (§7.3); the service names at most as many people in any call to
    # people, its card calls included (`recipients_per_call` of the channel's limits).
    card_recipients = dingtalk.MAX_BATCH_USERS
    card_call, group_call = "card/instances/createAndDeliver", "robot/groupMessages/send"
    within = None

    def _take_fault(self, name: str) -> Any:
        self._call(name)
        return super()._take_fault(name)

    def _deliver(self, item: dingtalk.Delivered) -> None:
        super()._deliver(item)
        self._arrival(item.user)
        if item.msgtype == "card":
            self._card(item.user, str(item.body.get("outTrackId") or ""), item.body, item.at)

    @property
    def refused(self) -> str:
        return (f"{self.throttled} flow-controlled over the per-person limit, "
                f"{self.redeliveries} Stream frames pushed again (not ACKed in time)")

    @property
    def per_minute(self) -> int:
        return self.per_user_per_minute

    def service_env(self) -> dict[str, str]:
        return {"SAFETYBOT_DINGTALK_MODE": self.mode}

    def mark(self) -> int:
        return self.connections_opened

    async def reached(self, base: str, mark: int) -> None:
        """HTTP: the service's callback URL; Stream: its own connection is open (a frame pushed
        sooner would wait for it)."""
        self.callback_url = base + "/dingtalk/callback"
        if self.mode == "stream":
            try:
                await self.until(lambda: self.connections_opened > mark, STEP_TIMEOUT)
            except TimeoutError:
                raise BenchError("the service opened no Stream connection") from None

    async def plan_groups(self, dsn: str, chats: Sequence[str]) -> None:
        """The plant's admin made the groups and added the robot: the service does not create
        them (no SAFETYBOT_DINGTALK_GROUP_TEMPLATE_ID) and sends to the plan's chat ids."""
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch("SELECT chat_id, name, members FROM group_chat "
                                    "WHERE chat_id = ANY($1::text[])", list(chats))
        finally:
            await conn.close()
        if len(rows) != len(chats):
            raise BenchError(f"group_chat holds {len(rows)} of the plan's {len(chats)} chats")
        for row in rows:
            self.add_group(row["chat_id"], row["name"], json.loads(row["members"]))

    @staticmethod
    def text_of(message: Any) -> str:
        body = message.body
        if message.msgtype == "sampleText":
            return str(body["content"])
        if message.msgtype == "sampleMarkdown":
            return str(body["text"])
        if message.msgtype == "card":
            return str(body["cardParamMap"].get("title", ""))
        return f"[{message.msgtype}]"

    @staticmethod
    def card_of(message: Any) -> dict[str, Any]:
        card: dict[str, Any] = message.body
        return card

    @staticmethod
    def buttons(card: dict[str, Any]) -> tuple[str, dict[str, str]]:
        """The card's outTrackId, and its buttons (a JSON string in the template's params)."""
        listed = json.loads(card["cardParamMap"]["buttons"])
        return str(card["outTrackId"]), {b["text"]: b["key"] for b in listed}

    async def press(self, user: str, track: str, key: str) -> int:
        """Stream: TimeoutError when not ACKed in time (the gateway pushes the frame again)."""
        return (await self.user(user).clicks(track, {"key": key})).status


Simulator = EmergencySimulator | DingTalkEmergencySimulator


# ---------------------------------------------------------------------------------------------
# The plant: responders, commanders, safety managers, areas; the plan


@dataclass(frozen=True)
class Plant:
    responders: list[str]
    commanders: list[str]
    managers: list[str]
    groups: list[str]
    areas: int = 5

    @classmethod
    def make(cls, responders: int, commanders: int, groups: int) -> Plant:
        return cls([f"r{i:05d}" for i in range(1, responders + 1)],
                   [f"cmd{i:02d}" for i in range(1, commanders + 1)],
                   [f"aq{i:02d}" for i in range(1, 4)],
                   [f"emg{i:02d}" for i in range(1, groups + 1)])

    @property
    def users(self) -> list[str]:
        return [*self.commanders, *self.managers, *self.responders]

    def write_roster(self, path: Path, responders: int) -> None:
        """The roster with the first `responders` responders (and everyone else)."""
        parts = ['[[departments]]\nid = "bench"\nname = "压测部"\n']

        def user(uid: str, name: str, role: str) -> None:
            parts.append(f'[[users]]\nid = "{uid}"\nname = "{name}"\ndepartment = "bench"\n'
                         f'roles = ["{role}"]\n')

        for i, c in enumerate(self.commanders, 1):
            user(c, f"值班长{i:02d}", "commander")
        for i, m in enumerate(self.managers, 1):
            user(m, f"安全员{i:02d}", "safety_manager")
        for i, r in enumerate(self.responders[:responders], 1):
            user(r, f"应急队员{i:05d}", "responder")
        for i in range(1, self.areas + 1):
            parts.append(f'[[areas]]\ncode = "A{i}"\nname = "{i}号车间"\n'
                         f'owner = "{self.managers[i % len(self.managers)]}"\n')
        path.write_text("\n".join(parts), encoding="utf-8")

    def write_plan(self, directory: Path) -> None:
        groups = ", ".join(f'"{g}"' for g in self.groups)
        (directory / "bench.toml").write_text(f'''
code = "{PLAN_CODE}"
name = "压测泄漏现场处置方案"
type = "现场处置方案"
triggers = ["{TRIGGER}"]
groups = [{groups}]
steps = ["立即报告值班长", "撤离下风向人员到集合点并清点人数", "设置警戒区"]
resources = ["空气呼吸器"]            # none in the ledger: the broadcast says so

[[levels]]
name = "{LEVEL}"
roles = ["responder"]

[[levels]]
name = "二级"
roles = ["safety_manager"]
''', encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# One activation


@dataclass
class Activation:
    target: str
    index: int
    commander: str
    activation_id: int = 0
    confirm_card: float = math.nan   # command sent -> confirmation card accepted
    from_t0: float = math.nan        # 确认启动 sent -> last card and last group message accepted
    from_command: float = math.nan   # 启动预案 sent -> the same
    cards_done: float = math.nan     # 确认启动 sent -> last responder card accepted
    groups_done: float = math.nan    # 确认启动 sent -> last group message accepted
    first_message: float = math.nan  # 确认启动 sent -> first responder card or group message
    calls: Counter[str] = field(default_factory=Counter)   # API calls from t0 to t_last
    cpu: dict[str, float] = field(default_factory=dict)
    error: str = ""


@dataclass
class Acks:
    target: str
    sent: int = 0
    elapsed: float = math.nan        # first click sent -> every Responder row answered
    sending: float = math.nan        # first click sent -> last click answered (HTTP)
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    board: str = ""
    board_wait: float = math.nan     # 应急状态 sent -> board with every answer accepted
    drained: float = math.nan        # first click sent -> outbox empty (all replies accepted)
    checks: dict[str, Any] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.sent / self.elapsed if self.elapsed else math.nan


def lower_bound(responders: int, per_call: int, groups: int, concurrency: int, latency: float
                ) -> tuple[int, float]:
    """The fewest API calls that reach everyone (`per_call` people a card call, one call a
    group), and the least time they take with `concurrency` calls in flight: the calls go in
    waves, each as long as one call."""
    calls = math.ceil(responders / per_call) + groups
    return calls, math.ceil(calls / concurrency) * latency


async def reply(sim: Simulator, user: str, seen: int, phrase: str,
                timeout: float = STEP_TIMEOUT) -> tuple[Any, int]:  # noqa: ASYNC109
    """The first message to `user` from number `seen` on whose text holds `phrase`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            message = await sim.message(user, seen, max(deadline - time.monotonic(), 0.01))
        except TimeoutError:
            raise BenchError(f"{user}: no message containing {phrase!r} within "
                             f"{timeout:.0f} s") from None
        seen += 1
        if phrase in sim.text_of(message):
            return message, seen


async def until(condition: Any, timeout: float, what: str,  # noqa: ASYNC109
                every: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise BenchError(f"{what}: not within {timeout:.0f} s")
        await asyncio.sleep(every)


async def outbox_pending(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(
            "SELECT count(*) FROM outbox_message WHERE status = 'pending'"))
    finally:
        await conn.close()


async def wait_idle(dsn: str, timeout: float) -> float:  # noqa: ASYNC109
    """Seconds until the outbox has nothing pending (everything queued was accepted)."""
    started = time.monotonic()

    async def idle() -> bool:
        return await outbox_pending(dsn) == 0
    await until(idle, timeout, "the outbox to empty", every=0.25)
    return time.monotonic() - started


async def activate(sim: Simulator, plant: Plant, run: Activation) -> None:
    """启动预案 → the confirmation card → 确认启动; waits for every card and group message."""
    commander = sim.user(run.commander)
    seen = len(sim.messages_for(run.commander))
    t_command = time.monotonic()
    await commander.says(f"启动预案 {TRIGGER} {LEVEL}")
    card, seen = await reply(sim, run.commander, seen, "请确认启动预案")
    run.confirm_card = card.at - t_command
    track, keys = sim.buttons(sim.card_of(card))
    go = keys["确认启动"]
    run.activation_id = int(go.split(":")[2])                # emg:go:<activation>:<token>
    t0 = time.monotonic()
    status = await sim.press(run.commander, track, go)
    if status != 200:
        raise BenchError(f"确认启动 answered {status}")
    cards = sim.cards.setdefault(run.activation_id, [])

    async def complete() -> bool:
        return (len(cards) >= len(plant.responders)
                and len(sim.group_messages_since(plant.groups, t0)) >= len(plant.groups))
    await until(complete, STEP_TIMEOUT, f"activation {run.activation_id}: every card and group "
                f"message ({len(cards)} cards so far)")
    groups = sim.group_messages_since(plant.groups, t0)
    t_last = max(*cards, *groups)
    run.cards_done, run.groups_done = max(cards) - t0, max(groups) - t0
    run.first_message = min(min(cards), min(groups)) - t0
    run.from_t0, run.from_command = t_last - t0, t_last - t_command
    run.calls = sim.calls_between(t0, t_last)
    await reply(sim, run.commander, seen, "已启动：已向")


async def close(sim: Simulator, run: Activation, dsn: str) -> None:
    """结束预案, and its summary to the commander and the groups all sent."""
    seen = len(sim.messages_for(run.commander))
    await sim.user(run.commander).says(f"结束预案 {run.activation_id}")
    await reply(sim, run.commander, seen, "已结束")
    await wait_idle(dsn, STEP_TIMEOUT)


# ---------------------------------------------------------------------------------------------
# 10,000 acknowledgements


async def answered(dsn: str, activation_id: int) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(
            "SELECT count(*) FROM emergency_responder WHERE activation_id = $1 AND answer <> ''",
            activation_id))
    finally:
        await conn.close()


async def acknowledge_all(sim: Simulator, plant: Plant, run: Activation,
                          concurrency: int, dsn: str, drain_timeout: float) -> Acks:
    result = Acks(run.target)
    clicks = []
    for user in plant.responders:
        card = sim.latest_card.get(user)
        track, keys = sim.buttons(card) if card is not None else ("", {})
        if not track.startswith(f"emg-{run.activation_id}-"):
            raise BenchError(f"{user} has no card of activation {run.activation_id}")
        clicks.append((user, track, keys["收到"]))
    gate = asyncio.Semaphore(concurrency)

    async def click(user: str, track: str, key: str) -> None:
        async with gate:
            started = time.monotonic()
            try:
                status = await sim.press(user, track, key)
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            result.statuses[status] += 1
            if status:
                result.latencies.append(time.monotonic() - started)

    started = time.monotonic()
    sending = asyncio.gather(*(click(*c) for c in clicks))

    async def all_in() -> bool:
        return await answered(dsn, run.activation_id) >= len(clicks)
    try:
        await until(all_in, drain_timeout, "every Responder row answered", every=0.05)
        result.elapsed = time.monotonic() - started
    finally:
        await sending
    result.sending = time.monotonic() - started
    result.sent = len(clicks)
    # The board, as the commander asks for it (it queues behind the acks' own replies).
    seen = len(sim.messages_for(run.commander))
    asked = time.monotonic()
    await sim.user(run.commander).says("应急状态")
    want = f"已确认 {len(clicks)}/{len(clicks)}"
    with contextlib.suppress(BenchError):
        while True:
            board, seen = await reply(sim, run.commander, seen, "应急看板",
                                      max(drain_timeout - (time.monotonic() - asked), 0.1))
            result.board = sim.text_of(board)
            if want in result.board:
                result.board_wait = board.at - asked
                break
    with contextlib.suppress(BenchError):
        await wait_idle(dsn, max(drain_timeout - (time.monotonic() - started), 1.0))
        result.drained = time.monotonic() - started
    result.checks = await ack_checks(dsn, run.activation_id)
    return result


async def ack_checks(dsn: str, activation_id: int) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetchrow(
            "SELECT count(*) AS n, count(*) FILTER (WHERE answer = '收到') AS ok, "
            "count(*) FILTER (WHERE answer = '') AS silent, count(*) FILTER (WHERE late) AS late, "
            "count(DISTINCT user_id) AS people FROM emergency_responder "
            "WHERE activation_id = $1", activation_id)
        audits = await conn.fetchrow(
            "SELECT count(*) AS n, count(DISTINCT actor) AS people FROM audit_event "
            "WHERE subject_type = 'activation' AND subject_id = $1 AND action = 'ack_ok'",
            str(activation_id))
        parked = await conn.fetchval("SELECT count(*) FROM inbox_event WHERE status = 'parked'")
        deliveries = await conn.fetch(
            "SELECT status, count(*) AS n FROM outbox_delivery GROUP BY status")
    finally:
        await conn.close()
    assert rows is not None and audits is not None
    return {"responders": rows["n"], "收到": rows["ok"], "silent": rows["silent"],
            "late": rows["late"], "distinct people": rows["people"],
            "ack audits": audits["n"], "ack audits, distinct people": audits["people"],
            "parked events (run)": parked,
            "deliveries (run)": {str(d["status"]): int(d["n"]) for d in deliveries}}


# ---------------------------------------------------------------------------------------------
# Rounds


@dataclass
class Run:
    activations: list[Activation] = field(default_factory=list)
    acks: list[Acks] = field(default_factory=list)


async def run_target(sim: Simulator, plant: Plant, target: Target, rounds: int,
                     commanders: list[str], args: argparse.Namespace, dsn: str, out: Run
                     ) -> None:
    """`rounds` activations, each closed before the next; the last one, if asked, stays open
    for the acknowledgements and is closed after them."""
    mark = sim.mark()
    children, profiler = await start_target(target, args.logs, args, len(out.activations))
    try:
        await sim.reached(target.base, mark)
        await sim.plan_groups(dsn, plant.groups)
        await wait_idle(dsn, STEP_TIMEOUT)
        for i in range(rounds):
            run = Activation(target.name, i, commanders.pop(0))
            # The simulator's records live to the end of the run: the collector need not walk
            # them while an activation is timed (a full collection pauses this process, and with
            # it the simulated API, for as long as they are many).
            gc.freeze()
            print(f"{target.name}: activation {i + 1}/{rounds} …", file=sys.stderr)
            before = process_cpu(children)
            await activate(sim, plant, run)
            after = process_cpu(children)
            run.cpu = {name: after[name] - before[name] for name in before}
            out.activations.append(run)
            await wait_idle(dsn, STEP_TIMEOUT)
            if i < rounds - 1 or not args.acks:
                await close(sim, run, dsn)
                continue
            print(f"{target.name}: {len(plant.responders)} acknowledgements …", file=sys.stderr)
            before = process_cpu(children)
            acks = await acknowledge_all(sim, plant, run, args.ack_concurrency, dsn,
                                         args.drain_timeout)
            after = process_cpu(children)
            acks.cpu = {name: after[name] - before[name] for name in before}
            out.acks.append(acks)
            await close(sim, run, dsn)
    finally:
        for child in children.values():
            await child.stop()
        if profiler is not None:
            await profiler.stop(grace=10.0)


# ---------------------------------------------------------------------------------------------
# Report


def report(args: argparse.Namespace, info: dict[str, str], plant: Plant, run: Run,
           sim: Simulator) -> bool:
    per_call = sim.card_recipients
    calls, bound = lower_bound(len(plant.responders), per_call, len(plant.groups),
                               args.outbox_concurrency, args.latency)
    print(f"\n## Emergency benchmark ({sim.platform})\n")
    for key, value in info.items():
        print(f"- {key}: {value}")
    print(f"- {len(plant.responders)} responders (role responder, all called by level "
          f"{LEVEL}), {len(plant.groups)} group chats; simulator latency "
          f"{args.latency * 1000:.0f} ms per API call, {sim.per_minute} messages a "
          f"minute per person; SAFETYBOT_OUTBOX_CONCURRENCY={args.outbox_concurrency}; pool "
          f"{args.pool_size} per process; `safetybot work` under nice {args.worker_nice}")
    print(f"- lower bound: ⌈{len(plant.responders)}/{per_call}⌉ = "
          f"{math.ceil(len(plant.responders) / per_call)} card calls ({sim.card_call}) + "
          f"{len(plant.groups)} group sends ({sim.group_call}) = {calls} calls; in waves of "
          f"{args.outbox_concurrency}: ⌈{calls}/{args.outbox_concurrency}⌉ × "
          f"{args.latency * 1000:.0f} ms = **{bound * 1000:.0f} ms** "
          f"({calls} × {args.latency * 1000:.0f} ms ÷ {args.outbox_concurrency} = "
          f"{calls * args.latency / args.outbox_concurrency * 1000:.0f} ms without rounding)\n")
    print("t0 = 确认启动 sent; t_last = last responder card and last group message accepted.\n")
    print("| target | rounds | t_last − t0 ms | × bound | from 启动预案 ms | confirmation card ms "
          "| last card ms | last group ms | API calls t0→t_last |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    ok = True
    verdicts = []
    for name in args.targets:
        rs = [r for r in run.activations if r.target == name]
        if not rs:
            continue
        t = median([r.from_t0 for r in rs])
        calls_made = Counter[str]()
        for r in rs:
            calls_made += r.calls
        per_round = {k: v / len(rs) for k, v in sorted(calls_made.items())}
        shown = ", ".join(f"{k} {v:g}" for k, v in per_round.items())
        print(f"| {name} | {len(rs)} | {fmt(t * 1000)} | {fmt(t / bound, 2)} | "
              f"{fmt(median([r.from_command for r in rs]) * 1000)} | "
              f"{fmt(median([r.confirm_card for r in rs]) * 1000)} | "
              f"{fmt(median([r.cards_done for r in rs]) * 1000)} | "
              f"{fmt(median([r.groups_done for r in rs]) * 1000)} | {shown} |")
        within = ("" if sim.within is None else f"≤ {sim.within:g} s: "
                  f"{'met' if t <= sim.within else 'MISSED'}; ")
        verdicts.append(f"{name}: median {fmt(t * 1000)} ms — {within}≤ 2 × bound "
                        f"({2 * bound * 1000:.0f} ms): {'met' if t <= 2 * bound else 'MISSED'}")
    print()
    for line in verdicts:
        print(line)
    print("\n### Activation rounds\n")
    print("| target | # | activation | t_last − t0 ms | from 启动预案 | first message ms | "
          "last card | last group | API calls | CPU s: " + " / ".join(
              dict.fromkeys(n for r in run.activations for n in r.cpu)) + " |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for r in run.activations:
        print(f"| {r.target} | {r.index + 1} | {r.activation_id} | {fmt(r.from_t0 * 1000)} | "
              f"{fmt(r.from_command * 1000)} | {fmt(r.first_message * 1000)} | "
              f"{fmt(r.cards_done * 1000)} | {fmt(r.groups_done * 1000)} | "
              f"{sum(r.calls.values())} | "
              f"{' / '.join(fmt(v, 1) for v in r.cpu.values())} |")
    if run.acks:
        print("\n### Acknowledgements\n")
        print(f"{len(plant.responders)} clicks on 收到, {args.ack_concurrency} in flight; "
              "ingested = every Responder row has its answer; a click's callback latency runs "
              "to its HTTP answer, or on DingTalk's Stream to its frame's ACK.\n")
        n = len(plant.responders)
        print(f"| target | ingested s | acks/s | callback p50 ms | p99 ms | non-200 | "
              f"board {n}/{n} after 应急状态 s | outbox drained s | CPU s |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for a in run.acks:
            bad = a.sent - a.statuses[200]
            print(f"| {a.target} | {fmt(a.elapsed, 1)} | {fmt(a.per_second)} | "
                  f"{fmt(percentile_ms(a.latencies, 50), 1)} | "
                  f"{fmt(percentile_ms(a.latencies, 99), 1)} | {bad} | "
                  f"{fmt(a.board_wait, 1)} | {fmt(a.drained, 1)} | "
                  f"{' / '.join(f'{k} {v:.1f}' for k, v in a.cpu.items())} |")
        for a in run.acks:
            c = a.checks
            good = (c["responders"] == c["收到"] == c["distinct people"] == n
                    and c["silent"] == c["late"] == 0
                    and c["ack audits"] == c["ack audits, distinct people"] == n
                    and f"已确认 {n}/{n}" in a.board and a.statuses[200] == n)
            ok = ok and good
            print(f"\n{a.target}: {'correct' if good else 'NOT CORRECT'}: {c}")
            print("    board: " + a.board.splitlines()[1][:120] if len(a.board.splitlines()) > 1
                  else "    board: (none)")
    print(f"\nsimulator: {len(sim.delivered)} delivered, {sim.refused}, "
          f"calls {dict(sorted(sim.calls.items()))}")
    for log in sorted(p for p in args.logs.glob("*.log") if not p.name.endswith(".pyspy.log")):
        lines = log_summary(log)
        print(f"\nwarnings/errors in {log.name}:" + ("" if lines else " none"))
        for line in lines:
            print("    " + line)
    return ok and all(not r.error for r in run.activations)


# ---------------------------------------------------------------------------------------------
# Main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--platform", choices=PLATFORMS, default="wecom",
                   help="everyone on this platform, the only one switched on")
    p.add_argument("--dingtalk-mode", choices=("stream", "http"), default="stream",
                   help="how DingTalk reaches the service: Stream frames or HTTP callbacks")
    p.add_argument("--responders", type=int, default=10_000)
    p.add_argument("--groups", type=int, default=50)
    p.add_argument("--rounds", type=int, default=3, help="activations per target")
    p.add_argument("--targets", default="split,single",
                   help="deployments: split (serve --no-workers + work), single (serve)")
    p.add_argument("--latency", type=float, default=0.05, help="seconds per simulated API call")
    p.add_argument("--outbox-concurrency", type=int, default=Settings().outbox_concurrency,
                   help="SAFETYBOT_OUTBOX_CONCURRENCY: API calls the service has in flight")
    p.add_argument("--no-acks", dest="acks", action="store_false",
                   help="skip the acknowledgement phase")
    p.add_argument("--ack-concurrency", type=int, default=200, help="clicks in flight")
    p.add_argument("--drain-timeout", type=float, default=900.0,
                   help="seconds to wait for the acks, the board and the outbox to drain")
    p.add_argument("--pool-size", type=int, default=POSTGRES_POOL_SIZE)
    p.add_argument("--worker-nice", type=int, default=10, metavar="N",
                   help="run `safetybot work` under `nice -n N` (0: not at all)")
    p.add_argument("--admin-dsn", default="postgres://postgres@127.0.0.1:5432/test")
    p.add_argument("--py-spy", type=Path, default=None, metavar="PATH",
                   help="py-spy binary: profile the inbox-handling process of every target")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    args = p.parse_args(argv)
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if not args.targets or set(args.targets) - {"split", "single"}:
        p.error("--targets: split, single or both")
    if min(args.responders, args.groups, args.rounds, args.ack_concurrency,
           args.outbox_concurrency) < 1:
        p.error("--responders, --groups, --rounds, --ack-concurrency and "
                "--outbox-concurrency must be at least 1")
    if args.groups > 99:
        p.error("--groups: at most 99")
    return args


async def bench(args: argparse.Namespace, version: str) -> int:
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    # A commander for every activation: each gets ~5 messages, and 20 or 30 a minute is the
    # limit.
    plant = Plant.make(args.responders, args.rounds * len(args.targets) + 2, args.groups)
    args.logs = args.out / time.strftime("%Y%m%d-%H%M%S-emergency")
    args.logs.mkdir(parents=True, exist_ok=True)
    run = Run()
    with tempfile.TemporaryDirectory(prefix="safetybot-bench-") as tmp:
        seed, roster, plans = Path(tmp) / "seed.toml", Path(tmp) / "roster.toml", Path(tmp)
        plant.write_roster(seed, SEED_RESPONDERS)
        plant.write_roster(roster, len(plant.responders))
        plans = Path(tmp) / "plans"
        plans.mkdir()
        plant.write_plan(plans)
        async with fresh_database(args.admin_dsn) as dsn:
            info = await machine_info(dsn) | {"service code": version}
            sim: Simulator = (EmergencySimulator(plant.users) if args.platform == "wecom"
                              else DingTalkEmergencySimulator(plant.users, args.dingtalk_mode))
            sim.latency = args.latency
            await sim.start()
            try:
                targets = make_targets(args, dsn, Path(tmp) / "media", sim.base_url,
                                       args.platform)
                for target in targets.values():
                    for env in (target.env, target.work_env):
                        if env is not None:
                            env["SAFETYBOT_OUTBOX_CONCURRENCY"] = str(args.outbox_concurrency)
                            env.update(sim.service_env())
                env = next(iter(targets.values())).env
                await run_command(env, "migrate")
                # A group chat has everyone its plan calls, at most 2,000 (appchat/create):
                # load-plans refuses a plan calling 10,000 with groups. Load it while the roster
                # has a few responders, then the whole roster (see the README).
                await run_command(env, "load-org", str(seed))
                await run_command(env, "load-plans", str(plans))
                await run_command(env, "load-org", str(roster))
                commanders = list(plant.commanders)
                for name in args.targets:
                    await run_target(sim, plant, targets[name], args.rounds, commanders,
                                     args, dsn, run)
            finally:
                await sim.stop()
            ok = report(args, info, plant, run, sim)
    return 0 if ok else 2


def main(argv: Sequence[str] | None = None) -> int:
    return run_bench("emergency_bench", bench(parse_args(argv), code_version()))


if __name__ == "__main__":
    sys.exit(main())
