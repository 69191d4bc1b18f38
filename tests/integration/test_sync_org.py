"""`safetybot sync-org --from wecom|dingtalk`: the roster read from the platform's contacts, over
real HTTP from the simulators into the real database, beside the TOML roster of `load-org`."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tortoise.context import TortoiseContext

from bot.channels import dingtalk_contacts, wecom_contacts
from bot.clock import utc_now
from bot.org_sync import Directory, SyncReport, sync_org
from bot.plans import load_plans
from bot.roster import load_org
from bot.settings import Settings, load_settings
from models.audit import AuditEvent
from models.hazard import Status, Ticket
from models.org import Department, User
from simulator.contacts import Contacts
from simulator.dingtalk import DingTalkSimulator
from simulator.wecom import WeComSimulator
from tests.harness import (
    AES_KEY,
    AGENT_ID,
    CORP_ID,
    DINGTALK_CLIENT_ID,
    DINGTALK_ROBOT,
    DINGTALK_SECRET,
    DINGTALK_TEMPLATE,
    ROSTER_MEDIA,
    SECRET,
    TOKEN,
    cli,
)

NOW = datetime(2026, 12, 8, 2, 0, tzinfo=UTC)
Reader = Callable[[Settings, aiohttp.ClientSession, str, Callable[[], datetime]], Any]


@dataclass
class Platform:
    """A platform played by its simulator, with the plant's contacts on it."""

    name: str
    contacts: Contacts
    env: dict[str, str]                    # SAFETYBOT_* for the CLI, and the settings
    read: Reader
    refuse_token: Callable[[], None]
    fail_next_listing: Callable[[], None]  # the platform falls over reading the people
    listings: Callable[[], int]            # calls made for the people
    stop: Callable[[], Any]

    @property
    def settings(self) -> Settings:
        return load_settings(self.env)


def plant(contacts: Contacts) -> None:
    """A plant's contacts: the manager heads the plant, 李四 the production department, 王五 its
    first workshop; 安全环保部 has no head of its own."""
    contacts.departments[1].name = "示例化工厂"
    contacts.department(2, "生产部")
    contacts.department(3, "一车间", parent=2)
    contacts.department(4, "安全环保部")
    contacts.person("zhaoliu", "赵六", 1, mobile="13800000004", leads=(1,))
    contacts.person("lisi", "李四", 2, mobile="13800000002", leads=(2,))
    contacts.person("wangwu", "王五", 3, leads=(3,))
    contacts.person("zhangsan", "张三", 3, mobile="13800000001")
    contacts.person("qianqi", "钱七", 4)


@pytest.fixture(params=["wecom", "dingtalk"])
async def platform(request: pytest.FixtureRequest, database_url: str, db: TortoiseContext
                   ) -> AsyncIterator[Platform]:
    env = {"SAFETYBOT_DATABASE_URL": database_url, "SAFETYBOT_LOG_LEVEL": "WARNING"}
    if request.param == "wecom":
        wecom = WeComSimulator(CORP_ID, AGENT_ID, SECRET, TOKEN, AES_KEY)
        plant(wecom.directory)
        env |= {"SAFETYBOT_WECOM_CORP_ID": CORP_ID, "SAFETYBOT_WECOM_AGENT_ID": str(AGENT_ID),
                "SAFETYBOT_WECOM_SECRET": SECRET, "SAFETYBOT_WECOM_TOKEN": TOKEN,
                "SAFETYBOT_WECOM_AES_KEY": AES_KEY,
                "SAFETYBOT_WECOM_API_BASE": await wecom.start(),
                "SAFETYBOT_WECOM_API_TIMEOUT_SECONDS": "1"}
        yield Platform("wecom", wecom.directory, env, wecom_contacts.read,
                       refuse_token=lambda: wecom.fail_next("gettoken", 40001),
                       fail_next_listing=lambda: wecom.fail_next("user/list", -1),
                       listings=lambda: wecom.calls["user/list"], stop=wecom.stop)
        await wecom.stop()
        return
    dingtalk = DingTalkSimulator(DINGTALK_CLIENT_ID, DINGTALK_SECRET, DINGTALK_ROBOT)
    contacts = dingtalk.directory
    plant(contacts)
    base = await dingtalk.start()
    env |= {"SAFETYBOT_DINGTALK_CLIENT_ID": DINGTALK_CLIENT_ID,
            "SAFETYBOT_DINGTALK_CLIENT_SECRET": DINGTALK_SECRET,
            "SAFETYBOT_DINGTALK_ROBOT_CODE": DINGTALK_ROBOT,
            "SAFETYBOT_DINGTALK_CARD_TEMPLATE_ID": DINGTALK_TEMPLATE,
            "SAFETYBOT_DINGTALK_API_BASE": base, "SAFETYBOT_DINGTALK_OAPI_BASE": base,
            "SAFETYBOT_DINGTALK_API_TIMEOUT_SECONDS": "2"}
    yield Platform(
        "dingtalk", contacts, env, dingtalk_contacts.read,
        refuse_token=lambda: dingtalk.fail_next("oauth2/accessToken", 400,
                                                "invalidClientIdOrSecret"),
        fail_next_listing=lambda: dingtalk.fail_next("topapi/v2/user/list", 502, -1),
        listings=lambda: dingtalk.calls["topapi/v2/user/list"], stop=dingtalk.stop)
    await dingtalk.stop()


async def sync(platform: Platform, *, dry_run: bool = False) -> SyncReport:
    """What `safetybot sync-org` does, in this process."""
    async with aiohttp.ClientSession() as session:
        directory: Directory = await platform.read(platform.settings, session, "test", utc_now)
    return await sync_org(directory, NOW, dry_run=dry_run)


async def run(platform: Platform, *args: str) -> subprocess.CompletedProcess[str]:
    """`safetybot ARGS` in a process of its own, while the simulator answers here."""
    return await asyncio.to_thread(cli, *args, env=platform.env)


async def people() -> dict[str, tuple[str, str | None, str | None, str, bool]]:
    """Each person: name, department, supervisor, who keeps the row, active."""
    rows = await User.all().order_by("id").values_list(
        "id", "name", "department_id", "supervisor_id", "source", "active")
    return {row[0]: tuple(row[1:]) for row in rows}


async def snapshot() -> tuple[object, ...]:
    return (await people(), [(d.id, d.name) for d in await Department.all().order_by("id")],
            await AuditEvent.all().count())


def roster(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "org.toml"
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# The platform's word


async def test_a_first_sync_adds_the_departments_and_the_people_with_their_heads_above_them(
        platform: Platform) -> None:
    report = await sync(platform)

    p = platform.name
    assert report.summary() == ("4 departments, 5 people: 9 created, 0 updated, 0 unchanged, "
                                "0 deactivated, 0 kept by another source")
    assert [(d.id, d.name) for d in await Department.all().order_by("id")] == [
        (f"{p}-1", "示例化工厂"), (f"{p}-2", "生产部"), (f"{p}-3", "一车间"),
        (f"{p}-4", "安全环保部")]
    assert await people() == {
        "lisi": ("李四", f"{p}-2", "zhaoliu", p, True),
        "qianqi": ("钱七", f"{p}-4", "zhaoliu", p, True),    # no head of its own: the plant's
        "wangwu": ("王五", f"{p}-3", "lisi", p, True),        # a head: the head above
        "zhangsan": ("张三", f"{p}-3", "wangwu", p, True),
        "zhaoliu": ("赵六", f"{p}-1", None, p, True),
    }
    zhangsan = await User.get(id="zhangsan")
    assert (zhangsan.mobile, zhangsan.platform, zhangsan.platform_id, zhangsan.roles) == (
        "13800000001", p, "", [])
    audit = await AuditEvent.filter(actor="sync-org").values_list("action", "subject_id")
    assert sorted(audit)[:2] == [("org.department.created", f"{p}-1"),
                                 ("org.department.created", f"{p}-2")]
    assert len(audit) == 9
    assert "user zhangsan (张三) created" in report.lines()


async def test_syncing_the_same_contacts_again_writes_nothing(platform: Platform) -> None:
    await sync(platform)
    before = await snapshot()

    again = await sync(platform)

    assert (again.changes, again.unchanged) == ((), 9)
    assert await snapshot() == before


async def test_a_renamed_person_a_moved_person_and_a_moved_department_are_updated(
        platform: Platform) -> None:
    await sync(platform)
    contacts, p = platform.contacts, platform.name
    contacts.people["zhangsan"].name = "张三丰"
    contacts.departments[2].name = "生产一部"
    contacts.move_department(3, 1)            # 一车间 now answers to the plant
    contacts.moves("qianqi", 2)

    report = await sync(platform)

    assert report.lines() == [
        f'department {p}-2 (生产部) updated: name "生产部" → "生产一部"',
        f'user qianqi (钱七) updated: department "{p}-4" → "{p}-2", '
        'supervisor "zhaoliu" → "lisi"',
        'user wangwu (王五) updated: supervisor "lisi" → "zhaoliu"',
        'user zhangsan (张三) updated: name "张三" → "张三丰"',
    ]
    assert (await people())["zhangsan"][0] == "张三丰"
    updates = await AuditEvent.filter(actor="sync-org", action="org.user.updated").count()
    assert updates == 3


async def test_someone_who_left_is_deactivated_and_their_tickets_stay_as_they_were(
        platform: Platform) -> None:
    await sync(platform)
    ticket = await Ticket.create(reporter_id="zhangsan", owner_id="zhangsan",
                                 status=Status.OPEN, description="配电箱门没关",
                                 created_at=NOW, updated_at=NOW)
    platform.contacts.leaves("zhangsan")

    report = await sync(platform)

    assert report.lines() == ["user zhangsan (张三) deactivated: no longer in the platform's "
                              "contacts"]
    assert (await people())["zhangsan"][4] is False
    kept = await Ticket.get(id=ticket.id)
    assert (kept.status, kept.owner_id, kept.reporter_id) == (  # type: ignore[attr-defined]
        Status.OPEN, "zhangsan", "zhangsan")


async def test_a_department_with_more_people_than_a_page_holds_is_read_whole(
        platform: Platform) -> None:
    for n in range(250):
        platform.contacts.person(f"w{n:03d}", f"工人{n}", 2)

    report = await sync(platform)

    assert report.count("created") == 4 + 5 + 250
    # DingTalk's pages hold 100: 251 people in 生产部 take three, one each elsewhere.
    assert platform.listings() == {"wecom": 4, "dingtalk": 6}[platform.name]
    assert await User.filter(department_id=f"{platform.name}-2", supervisor_id="lisi"
                             ).count() == 250


# ---------------------------------------------------------------------------------------------
# Beside the TOML roster and the plans

ROSTER = """\
[[departments]]
id = "hse"
name = "安全环保部"

[[users]]
id = "zhangsan"
name = "张三"
department = "hse"
roles = ["worker", "reviewer"]
supervisor = "zhaoliu"

[[users]]
id = "zhaoliu"
name = "赵六"
roles = ["principal"]

[[users]]
id = "qianqi"
name = "钱七"
roles = ["safety_manager"]
"""


async def test_the_roster_keeps_what_it_names_and_the_platform_fills_in_the_rest(
        platform: Platform, tmp_path: Path) -> None:
    await load_org(roster(tmp_path, ROSTER), NOW, ROSTER_MEDIA)
    p = platform.name

    report = await sync(platform)

    assert await people() == {
        "lisi": ("李四", f"{p}-2", "zhaoliu", p, True),
        "qianqi": ("钱七", f"{p}-4", "zhaoliu", "roster", True),   # filled in
        "wangwu": ("王五", f"{p}-3", "lisi", p, True),
        "zhangsan": ("张三", "hse", "zhaoliu", "roster", True),    # the file's, not 王五
        "zhaoliu": ("赵六", f"{p}-1", None, "roster", True),
    }
    assert {u.id: u.roles for u in await User.filter(source="roster")} == {
        "zhangsan": ["worker", "reviewer"], "zhaoliu": ["principal"],
        "qianqi": ["safety_manager"]}
    assert report.count("created") == 4 + 2
    # Loading the file again leaves what the platform filled in; syncing again changes nothing.
    reloaded = await load_org(roster(tmp_path, ROSTER), NOW, ROSTER_MEDIA)
    assert (reloaded.updated, reloaded.deactivated) == (0, 0)
    assert (await sync(platform)).changes == ()
    # What the platform filled in, it keeps current.
    platform.contacts.moves("qianqi", 2)
    assert (await sync(platform)).lines() == [
        f'user qianqi (钱七) updated: department "{p}-4" → "{p}-2", '
        'supervisor "zhaoliu" → "lisi"']


async def test_load_org_after_a_sync_leaves_the_synced_people_and_takes_over_whom_it_names(
        platform: Platform, tmp_path: Path) -> None:
    await sync(platform)
    p = platform.name

    report = await load_org(roster(tmp_path, """\
[[users]]
id = "lisi"
name = "李四"
roles = ["reviewer"]
"""), NOW, ROSTER_MEDIA)

    assert (report.created, report.updated, report.deactivated) == (0, 1, 0)
    assert await people() == {
        "lisi": ("李四", f"{p}-2", "zhaoliu", "roster", True),
        "qianqi": ("钱七", f"{p}-4", "zhaoliu", p, True),
        "wangwu": ("王五", f"{p}-3", "lisi", p, True),
        "zhangsan": ("张三", f"{p}-3", "wangwu", p, True),
        "zhaoliu": ("赵六", f"{p}-1", None, p, True),
    }
    assert (await User.get(id="lisi")).roles == ["reviewer"]
    assert (await sync(platform)).changes == ()


async def test_a_roster_department_of_the_platform_s_id_is_that_department(
        platform: Platform, tmp_path: Path) -> None:
    await load_org(roster(tmp_path, """\
[[departments]]
id = "2"
name = "生产部（厂内叫法）"

[[users]]
id = "zhaoliu"
name = "赵六"
"""), NOW, ROSTER_MEDIA)

    await sync(platform)

    assert [(d.id, d.name) for d in await Department.all().order_by("id")] == [
        ("2", "生产部（厂内叫法）"), (f"{platform.name}-1", "示例化工厂"),
        (f"{platform.name}-3", "一车间"), (f"{platform.name}-4", "安全环保部")]
    assert (await people())["lisi"][1] == "2"


async def test_a_roster_person_with_another_id_on_the_platform_is_found_and_can_leave(
        platform: Platform, tmp_path: Path) -> None:
    p = platform.name
    await load_org(roster(tmp_path, f"""\
[[users]]
id = "zs"
name = "张三"
platform = "{p}"
platform_id = "zhangsan"
"""), NOW, ROSTER_MEDIA)

    await sync(platform)

    everyone = await people()
    assert "zhangsan" not in everyone
    assert everyone["zs"] == ("张三", f"{p}-3", "wangwu", "roster", True)
    platform.contacts.leaves("zhangsan")
    assert (await sync(platform)).lines() == [
        "user zs (张三) deactivated: no longer in the platform's contacts"]


async def test_after_a_sync_the_plans_chats_follow_and_the_plans_name_who_left(
        platform: Platform, tmp_path: Path) -> None:
    await sync(platform)
    (tmp_path / "small.toml").write_text(
        'code = "SMALL"\nname = "小型预案"\ntype = "现场处置"\ntriggers = ["小事"]\n'
        'groups = ["emergency09"]\nsteps = ["报告值班长"]\n'
        '[[levels]]\nname = "一级"\npeople = ["zhangsan", "lisi", "wangwu"]\n', encoding="utf-8")
    await load_plans(tmp_path, NOW, platform.name)
    platform.contacts.leaves("zhangsan")

    report = await sync(platform)

    # The chat's creation still waits in the outbox: its change will follow it.
    assert [(c.chat_id, c.waiting) for c in report.chats] == [("emergency09", True)]
    assert report.gaps == ('plan SMALL, level 一级: "zhangsan" named but no longer in the '
                           'roster; the plan does not call them',)


# ---------------------------------------------------------------------------------------------
# The command


async def test_a_dry_run_changes_nothing_and_prints_what_the_sync_then_does(
        platform: Platform) -> None:
    await sync(platform)
    platform.contacts.people["zhangsan"].name = "张三丰"
    platform.contacts.leaves("qianqi")
    platform.contacts.person("sunba", "孙八", 4)
    before = await snapshot()

    dry = await run(platform, "sync-org", "--from", platform.name, "--dry-run")

    assert (dry.returncode, dry.stderr) == (0, "")
    assert await snapshot() == before
    real = await run(platform, "sync-org", "--from", platform.name)
    assert (real.returncode, real.stderr) == (0, "")
    assert dry.stdout.splitlines() == [*real.stdout.splitlines(),
                                       "safetybot: dry run: nothing written"]
    assert real.stdout.splitlines() == [
        f"safetybot: {platform.name}: 4 departments, 5 people: 1 created, 1 updated, "
        "7 unchanged, 1 deactivated, 0 kept by another source",
        "safetybot: user sunba (孙八) created",
        'safetybot: user zhangsan (张三) updated: name "张三" → "张三丰"',
        "safetybot: user qianqi (钱七) deactivated: no longer in the platform's contacts",
    ]
    assert await snapshot() != before


async def test_a_refused_token_is_one_line_and_changes_nothing(platform: Platform) -> None:
    before = await snapshot()
    platform.refuse_token()

    done = await run(platform, "sync-org", "--from", platform.name)

    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith(f"safetybot: sync-org --from {platform.name}: ")
    assert done.stderr.count("\n") == 1
    assert await snapshot() == before


async def test_a_platform_failing_half_way_through_changes_nothing(platform: Platform) -> None:
    await sync(platform)
    platform.contacts.people["zhangsan"].name = "张三丰"
    before = await snapshot()
    platform.fail_next_listing()

    done = await run(platform, "sync-org", "--from", platform.name)

    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith(f"safetybot: sync-org --from {platform.name}: ")
    assert done.stderr.count("\n") == 1
    assert await snapshot() == before


async def test_contacts_with_nobody_in_them_are_refused(platform: Platform) -> None:
    await sync(platform)
    before = await snapshot()
    for uid in list(platform.contacts.people):
        platform.contacts.leaves(uid)

    done = await run(platform, "sync-org", "--from", platform.name)

    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (f"safetybot: sync-org --from {platform.name}: the platform lists "
                           "nobody; is the app's visibility (可见范围, 通讯录权限范围) set?\n")
    assert await snapshot() == before


async def test_a_platform_out_of_reach_is_one_line(platform: Platform) -> None:
    await platform.stop()

    done = await run(platform, "sync-org", "--from", platform.name)

    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith(f"safetybot: sync-org --from {platform.name}: ")
    assert "unreachable" in done.stderr and done.stderr.count("\n") == 1


async def test_a_platform_not_configured_is_one_line(database_url: str) -> None:
    done = await asyncio.to_thread(cli, "sync-org", "--from", "dingtalk",
                                   env={"SAFETYBOT_DATABASE_URL": database_url})

    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == ("safetybot: sync-org: dingtalk is not configured "
                           "(set SAFETYBOT_DINGTALK_CLIENT_ID)\n")

