"""`safetybot load-plans`: the emergency plans from `config/plans/*.toml`, loaded whole or not at
all, checked against the roster, with their group chats created once; and after each
`safetybot load-org`, the chats follow the roster."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tortoise.context import TortoiseContext

from bot.plans import PlanError, PlansReport, load_plans, parse_plans
from bot.roster import load_org
from models.audit import AuditEvent
from models.chats import GroupChat
from models.emergency import Level, Plan, PlanKind
from models.org import User
from models.outbox import OutboxDelivery, OutboxMessage
from models.outgoing import GroupCreate, GroupUpdate
from simulator.wecom import WeComSimulator
from tests.harness import ROSTER_MEDIA, cli, demo_roster_copy, edit, settled
from tests.plant import DEMO_ORG, Person, plant

ROOT = Path(__file__).parents[2]
DEMO_PLANS = ROOT / "config" / "plans"
CHATS = ("emergency01", "emergency02", "emergency03")       # NH3, FIRE, GENERAL
NOW = datetime(2026, 11, 29, 1, 30, tzinfo=UTC)
LATER = NOW + timedelta(days=1)
# Everyone the demo roster gives a role that a 一级 response calls.
PLANT_RESPONSE = {"chenjianguo", "liuyang", "sunli", "zhouwei", "wangqiang", "zhaolei", "lihua",
                  "huangjun", "xuming", "gaofeng", "maxiaodong", "guoqiang"}


@pytest.fixture
async def org(db: TortoiseContext) -> None:
    await load_org(ROOT / "config" / "demo-org.toml", NOW, ROSTER_MEDIA)


@pytest.fixture
def plans(tmp_path: Path) -> Path:
    """A copy of the demo plans, to edit."""
    folder = tmp_path / "plans"
    shutil.copytree(DEMO_PLANS, folder)
    return folder


def small_plan(folder: Path, level: str) -> Path:
    """A plan file of one level, for what the demo plans cannot show."""
    path = folder / "small.toml"
    path.write_text(
        'code = "SMALL"\nname = "小型预案"\ntype = "现场处置"\ntriggers = ["小事"]\n'
        'groups = ["emergency09"]\nsteps = ["报告值班长"]\n'
        f'[[levels]]\nname = "一级"\n{level}\n', encoding="utf-8")
    return path


async def snapshot() -> dict[str, Any]:
    """Everything a load may touch, to show that a refused folder touched nothing."""
    return {
        "plans": await Plan.all().order_by("code").values(),
        "audit": await AuditEvent.all().count(),
        "outbox": await OutboxMessage.all().count(),
    }


async def test_the_demo_plans_load_with_their_levels_resources_and_audit(org: None) -> None:
    report = await load_plans(DEMO_PLANS, NOW, "webchat")

    assert report == PlansReport(plans=3, created=3, updated=0, unchanged=0, deactivated=0,
                                 groups=3)
    assert report.summary() == ("3 plans: 3 created, 0 updated, 0 unchanged, 0 deactivated; "
                                "3 group chats to create")
    nh3 = await Plan.get(code="NH3")
    assert (nh3.name, nh3.kind, nh3.report_level) == (
        "液氨泄漏现场处置方案", PlanKind.ONSITE, "二级")
    assert nh3.triggers == ["氨泄漏", "液氨泄漏", "漏氨"] and nh3.groups == ["emergency01"]
    assert nh3.level_names == ["一级", "二级", "三级"] and nh3.active and nh3.loaded_at == NOW
    assert nh3.levels[2] == {"name": "三级", "roles": [], "people": ["lihua", "huangjun", "sunli"],
                             "deputies": [["lihua", "zhouwei"]]}
    assert nh3.level("二级") == Level(
        "二级", ("safety_manager",), ("zhouwei", "lihua", "huangjun", "guoqiang", "xuming",
                                      "gaofeng"), (("zhouwei", "liuyang"), ("lihua", "huangjun")))
    assert nh3.resources == ["空气呼吸器", "防化服", "洗眼器", "堵漏工具", "气体检测仪",
                             "急救药箱"]
    assert nh3.at_or_above("一级", nh3.report_level) and not nh3.at_or_above("三级", "二级")
    kinds = {p.code: p.kind for p in await Plan.all()}
    assert kinds == {"NH3": PlanKind.ONSITE, "FIRE": PlanKind.SPECIAL,
                     "GENERAL": PlanKind.GENERAL}
    events = await AuditEvent.filter(actor="plans").order_by("id")
    assert [(e.action, e.subject_type, e.subject_id) for e in events] == [
        ("emergency.plan.created", "plan", code) for code in ("FIRE", "GENERAL", "NH3")]
    assert events[2].note == "液氨泄漏现场处置方案"
    assert events[2].data["after"]["kind"] == "现场处置方案"


async def test_loading_the_same_plans_again_changes_nothing(org: None) -> None:
    await load_plans(DEMO_PLANS, NOW, "webchat")
    before = await snapshot()

    report = await load_plans(DEMO_PLANS, LATER, "webchat")

    assert (report.created, report.updated, report.unchanged, report.deactivated,
            report.groups) == (0, 0, 3, 0, 0)
    assert await snapshot() == before


async def test_a_changed_file_rewrites_only_its_plan(org: None, plans: Path) -> None:
    await load_plans(plans, NOW, "webchat")
    edit(plans / "fire.toml", '"受伤人员送医，拨打120",',
         '"受伤人员送医，拨打120",\n  "清点器材，恢复消防设施",')
    # A short type name is stored as the full one: no change.
    edit(plans / "general.toml", 'type = "综合应急预案"', 'type = "综合"')

    report = await load_plans(plans, LATER, "webchat")

    assert (report.created, report.updated, report.unchanged) == (0, 1, 2)
    fire = await Plan.get(code="FIRE")
    assert fire.steps[-1] == "清点器材，恢复消防设施" and fire.loaded_at == LATER
    assert (await Plan.get(code="GENERAL")).loaded_at == NOW
    last = await AuditEvent.filter(actor="plans").order_by("-id").first()
    assert last is not None
    assert (last.action, last.subject_id, last.note) == ("emergency.plan.updated", "FIRE",
                                                         "changed: steps")


async def test_a_plan_whose_file_is_gone_is_deactivated_and_comes_back_with_it(
    org: None, plans: Path, tmp_path: Path
) -> None:
    await load_plans(plans, NOW, "webchat")
    (plans / "fire.toml").rename(tmp_path / "fire.toml")

    report = await load_plans(plans, LATER, "webchat")

    assert (report.plans, report.unchanged, report.deactivated) == (2, 2, 1)
    fire = await Plan.get(code="FIRE")  # kept: activations refer to plans
    assert not fire.active and fire.steps
    again = await load_plans(plans, LATER, "webchat")
    assert (again.updated, again.deactivated) == (0, 0)
    (tmp_path / "fire.toml").rename(plans / "fire.toml")

    back = await load_plans(plans, LATER, "webchat")

    assert (back.created, back.updated, back.deactivated) == (0, 1, 0)
    assert (await Plan.get(code="FIRE")).active
    actions = await AuditEvent.filter(subject_type="plan", subject_id="FIRE").order_by(
        "id").values_list("action", flat=True)
    assert actions == ["emergency.plan.created", "emergency.plan.deactivated",
                       "emergency.plan.reactivated"]


async def test_each_group_chat_is_queued_once_with_everyone_the_plan_calls(org: None) -> None:
    await load_plans(DEMO_PLANS, NOW, "wecom")
    await load_plans(DEMO_PLANS, LATER, "wecom")

    rows = await OutboxMessage.filter(kind="group_create").order_by("idempotency_key")
    assert [(r.idempotency_key, r.platform) for r in rows] == [
        ("group:emergency01", "wecom"), ("group:emergency02", "wecom"),
        ("group:emergency03", "wecom")]
    nh3 = rows[0].message
    assert isinstance(nh3, GroupCreate)
    assert (nh3.chat_id, nh3.name, nh3.owner) == ("emergency01", "液氨泄漏现场处置方案",
                                                  "chenjianguo")
    assert set(nh3.members) == PLANT_RESPONSE and len(nh3.members) == len(PLANT_RESPONSE)
    general = rows[2].message
    assert isinstance(general, GroupCreate) and set(general.members) == PLANT_RESPONSE | {"wujing"}
    recipients = await OutboxDelivery.filter(message_id=rows[0].id).values_list(
        "recipient", flat=True)
    assert recipients == ["chat:emergency01"]


async def test_a_group_chat_has_the_people_and_deputies_called_and_a_commander_owns_it(
    org: None, tmp_path: Path
) -> None:
    await User.filter(id="hepingan").update(active=False)
    small_plan(tmp_path, 'roles = ["owner"]\npeople = ["lihua", "huangjun"]\n'
                         'deputies = { lihua = "zhouwei" }')

    await load_plans(tmp_path, NOW, "webchat")

    row = await OutboxMessage.get(idempotency_key="group:emergency09")
    chat = row.message
    assert isinstance(chat, GroupCreate)
    # The area owners but 何平安, who has left; then the people; then the deputy, a commander.
    assert chat == GroupCreate("emergency09", "小型预案", "zhouwei", (
        "gaofeng", "guoqiang", "lihua", "linfang", "wangqiang", "xuming", "huangjun", "zhouwei"))


async def test_a_group_chat_of_one_person_is_refused(org: None, tmp_path: Path) -> None:
    path = small_plan(tmp_path, 'people = ["lihua"]')

    with pytest.raises(PlanError) as refused:
        await load_plans(tmp_path, NOW, "webchat")

    assert str(refused.value) == (f'{path}: groups: chat "emergency09" would have 1 member(s); '
                                  "WeCom needs 2 to 2000")
    assert await Plan.all().count() == 0


ROLES = "worker/owner/reviewer/safety_manager/principal/commander/responder/admin"
# file, text in it, its replacement, the error after "{path of the file}: "
BAD_PLANS = {
    "unknown type": (
        "nh3", 'type = "现场处置方案"', 'type = "处置方案"',
        'type "处置方案" must be one of 综合应急预案/专项应急预案/现场处置方案/'
        "综合/专项/现场处置"),
    "missing name": (
        "nh3", 'name = "液氨泄漏现场处置方案"\n', "", 'missing required key "name"'),
    "duplicate code across files": (
        "nh3", 'code = "NH3"', 'code = "FIRE"', 'code "FIRE" is already used by {fire}'),
    "a trigger shared by two plans": (
        "nh3", '"漏氨"]', '"漏氨", "坍塌"]', 'trigger "坍塌" is already a trigger of {general}'),
    "unknown role": (
        "nh3", 'roles = ["safety_manager"]\npeople = ["zhouwei"',
        'roles = ["safety_boss"]\npeople = ["zhouwei"',
        f'levels[1] (二级): role "safety_boss" must be one of {ROLES}'),
    "unknown person": (
        "nh3", '["lihua", "huangjun", "sunli"]', '["lihua", "huangjun", "nobody"]',
        'levels[2] (三级): person "nobody" is not in the roster'),
    "unknown deputy": (
        "nh3", '{ lihua = "zhouwei" }', '{ lihua = "nobody" }',
        'levels[2] (三级): deputy "nobody" of "lihua" is not in the roster'),
    "a deputy for someone the level does not call": (
        "nh3", '{ lihua = "zhouwei" }', '{ xuming = "zhouwei" }',
        'levels[2] (三级): deputies: "xuming" is not called at this level'),
    "own deputy": (
        "nh3", '{ lihua = "zhouwei" }', '{ lihua = "lihua" }',
        'levels[2] (三级): deputies: "lihua" cannot be their own deputy'),
    "resources from before the ledger": (
        "nh3", 'resources = ["空气呼吸器", "防化服", "洗眼器", "堵漏工具", "气体检测仪", '
        '"急救药箱"]',
        'resources = [{ what = "正压式空气呼吸器 4套", where = "3号车间东门应急柜" }]',
        "resources: [[resources]] tables are no longer read here: move each into the resource "
        "ledger (config/resources.toml, safetybot load-resources) and name their kinds instead, "
        'resources = ["灭火器", "空气呼吸器"]'),
    "a kind named twice": (
        "fire", '"灭火器", "消防水带"', '"灭火器", "灭火器"', 'resources lists "灭火器" twice'),
    "report_level not a level": (
        "nh3", 'report_level = "二级"', 'report_level = "四级"',
        'report_level "四级" is not one of the levels (一级/二级/三级)'),
    "a level name repeated": (
        "nh3", 'name = "三级"', 'name = "二级"',
        'levels[2] (二级): name "二级" is already used by levels[1]'),
    "unknown key": (
        "nh3", "triggers = [", "trigger = [",
        'unknown key "trigger"; allowed: code, name, type, triggers, groups, report_level, '
        "steps, levels, resources, reviewed_on"),
    "a review date that is not a date": (
        "nh3", "reviewed_on = 2025-09-01", 'reviewed_on = "去年三月"',
        'reviewed_on must be a date (reviewed_on = 2025-03-01), not "去年三月"'),
    "invalid TOML": (
        "nh3", 'code = "NH3"', "code = NH3",
        "not valid TOML: Invalid value (at line 5, column 8)"),
    "a bad group id": (
        "nh3", '["emergency01"]', '["emergency-01"]',
        'groups: "emergency-01" is not a WeCom chat id (1 to 32 letters and digits)'),
    "a trigger with a space": (
        "fire", '"着火"', '"着 火"', 'triggers: "着 火" must be one word, without spaces'),
}


@pytest.mark.parametrize("name, old, new, message", BAD_PLANS.values(), ids=BAD_PLANS.keys())
async def test_a_bad_plan_is_refused_whole_and_changes_nothing(
    org: None, plans: Path, name: str, old: str, new: str, message: str
) -> None:
    await load_plans(plans, NOW, "webchat")
    before = await snapshot()
    # A change in another plan, beside the mistake, shows that nothing of the folder was written.
    edit(plans / "general.toml", "做好记录", "做好记录并拍照")
    edit(plans / f"{name}.toml", old, new)

    with pytest.raises(PlanError) as refused:
        await load_plans(plans, LATER, "webchat")

    paths = {stem: plans / f"{stem}.toml" for stem in ("fire", "general", "nh3")}
    assert str(refused.value) == f"{paths[name]}: " + message.format(**paths)
    assert "\n" not in str(refused.value)
    assert await snapshot() == before


async def test_no_levels_is_refused(org: None, plans: Path) -> None:
    path = plans / "nh3.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text[:text.index("[[levels]]")], encoding="utf-8")

    with pytest.raises(PlanError, match=r"nh3\.toml: lists no levels \(\[\[levels\]\]\): at "
                                        r"least one, highest first$"):
        await load_plans(plans, NOW, "webchat")

    assert await Plan.all().count() == 0


async def test_a_person_who_left_the_roster_cannot_be_called(org: None) -> None:
    await User.filter(id="sunli").update(active=False)

    with pytest.raises(PlanError) as refused:
        await load_plans(DEMO_PLANS, NOW, "webchat")

    assert str(refused.value) == (f'{DEMO_PLANS / "fire.toml"}: levels[2] (三级): person "sunli" '
                                  "has left (inactive in the roster)")


async def test_plans_wait_for_the_roster(db: TortoiseContext) -> None:
    with pytest.raises(PlanError, match=r"^the roster is empty: load it first \(safetybot "
                                        r"load-org\)$"):
        await load_plans(DEMO_PLANS, NOW, "webchat")


def test_the_demo_plans_parse_without_a_database() -> None:
    plans = parse_plans(DEMO_PLANS)

    assert [(p.code, p.kind) for p in plans] == [
        ("FIRE", PlanKind.SPECIAL), ("GENERAL", PlanKind.GENERAL), ("NH3", PlanKind.ONSITE)]
    assert all([lv.name for lv in p.levels] == ["一级", "二级", "三级"] for p in plans)
    assert all(p.levels[0].deputy_of("chenjianguo") == "zhouwei" for p in plans)


def test_a_plan_needs_steps(tmp_path: Path) -> None:
    path = small_plan(tmp_path, 'people = ["lihua", "huangjun"]')
    edit(path, 'steps = ["报告值班长"]', "steps = []")

    with pytest.raises(PlanError, match=r"small\.toml: steps must list at least one$"):
        parse_plans(tmp_path)


def test_an_empty_or_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match=r"^.*: no plan files \(\*\.toml\)$"):
        parse_plans(tmp_path)
    with pytest.raises(PlanError, match=r"^.*absent: not a folder of plan files$"):
        parse_plans(tmp_path / "absent")


async def test_safetybot_load_plans_loads_and_refuses_a_bad_folder_with_one_line(
    org: None, database_url: str, plans: Path
) -> None:
    env = {"SAFETYBOT_DATABASE_URL": database_url, "SAFETYBOT_LOG_LEVEL": "WARNING"}
    done = await asyncio.to_thread(cli, "load-plans", str(plans), env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (f"safetybot: {plans}: 3 plans: 3 created, 0 updated, 0 unchanged, "
                           "0 deactivated; 3 group chats to create\n")
    edit(plans / "nh3.toml", '"sunli"]', '"nobody"]')

    bad = await asyncio.to_thread(cli, "load-plans", env={**env,
                                                           "SAFETYBOT_PLANS_DIR": str(plans)})

    assert bad.returncode == 1
    assert bad.stderr == (f'safetybot: {plans / "nh3.toml"}: levels[2] (三级): person "nobody" '
                          "is not in the roster\n")


def test_check_config_parses_the_plans_and_stops_on_a_bad_file(plans: Path) -> None:
    good = cli("check-config", env={})
    assert good.returncode == 0, good.stderr
    assert "SAFETYBOT_PLANS_DIR = config/plans" in good.stdout
    assert good.stdout.splitlines()[-5:] == [
        "plans: FIRE (火灾事故专项应急预案), GENERAL (生产安全事故综合应急预案), "
        "NH3 (液氨泄漏现场处置方案)", "resources: 20 in the ledger",
        "qualification: 13 certificate types, 8 work types", "training: 4 courses",
        "inspection: 8 checkpoints, 3 routes, 3 plans"]
    edit(plans / "fire.toml", 'type = "专项应急预案"', 'type = "专项预案"')

    bad = cli("check-config", env={"SAFETYBOT_PLANS_DIR": str(plans)})

    assert bad.returncode == 2
    [line] = bad.stderr.splitlines()
    assert line == (f'safetybot: {plans / "fire.toml"}: type "专项预案" must be one of '
                    "综合应急预案/专项应急预案/现场处置方案/综合/专项/现场处置")


# ---------------------------------------------------------------------------------------------
# After a roster load, the plans' chats follow it

ZHANGSAN_ROLES = 'name = "张三"\ndepartment = "prod"\nroles = ["worker"]'
ZHAOLEI = ('[[users]]\nid = "zhaolei"           # 1号车间操作工, 义务消防队员\nname = "赵磊"\n'
           'department = "prod"\nroles = ["worker", "responder"]\nsupervisor = "wangqiang"\n\n')


def roster(folder: Path, *edits: tuple[str, str], extra: str = "") -> Path:
    """The demo roster with `edits` made and `extra` entries added."""
    text = DEMO_ORG.read_text(encoding="utf-8")
    for old, new in edits:
        assert text.count(old) == 1, f"{old!r} must occur once in the demo roster"
        text = text.replace(old, new)
    return demo_roster_copy(folder, text + extra)


async def small_chat(tmp_path: Path, level: str) -> Path:
    """The one-level plan loaded from a folder of its own and its chat created in WeCom; returns
    the folder, to load a changed file from."""
    folder = tmp_path / "plans"
    folder.mkdir()
    small_plan(folder, level)
    await load_plans(folder, datetime.now(UTC), "wecom")
    await settled()
    return folder


@pytest.fixture
async def running(db: TortoiseContext, database_url: str, media_dir: Path
                  ) -> AsyncIterator[WeComSimulator]:
    """The demo org in the database, the service running, WeCom played by the simulator."""
    async with plant(database_url, media_dir) as (sim, _):
        yield sim


@pytest.fixture
async def chats(running: WeComSimulator) -> WeComSimulator:
    """…and the demo plans' chats created in WeCom."""
    await load_plans(DEMO_PLANS, datetime.now(UTC), "wecom")
    await settled()
    assert set(running.chats) == set(CHATS)
    return running


async def test_a_new_responder_joins_the_plans_chats_and_reads_the_next_emergency(
    chats: WeComSimulator, tmp_path: Path
) -> None:
    promoted = roster(tmp_path, (ZHANGSAN_ROLES, ZHANGSAN_ROLES.replace(
        '["worker"]', '["worker", "responder"]')))

    report = await load_org(promoted, datetime.now(UTC), ROSTER_MEDIA)

    assert (report.updated, [c.summary() for c in report.chats]) == (1, [
        "chat emergency02 (plan FIRE): 1 added, 0 removed",
        "chat emergency03 (plan GENERAL): 1 added, 0 removed",
        "chat emergency01 (plan NH3): 1 added, 0 removed"])
    update = (await OutboxMessage.get(idempotency_key="group:emergency01:1")).message
    assert update == GroupUpdate("emergency01", add=("zhangsan",))
    await chats.until(lambda: all("zhangsan" in chats.chats[c].userlist for c in CHATS), 10)
    assert set(chats.chats["emergency01"].userlist) == PLANT_RESPONSE | {"zhangsan"}
    zhouwei = Person(chats, "zhouwei")
    await zhouwei.says("启动预案 氨泄漏 三级 3号车间")
    await zhouwei.clicks(await zhouwei.expect("请确认启动预案"), "确认启动")
    await chats.until(lambda: len(chats.chat_messages("emergency01")) == 1, 10)
    [summary] = chats.chat_messages("emergency01")
    assert "液氨泄漏现场处置方案 三级响应" in summary.body["markdown"]["content"]
    assert "zhangsan" in summary.members


async def test_someone_who_leaves_the_roster_leaves_the_chats_and_loading_again_queues_nothing(
    chats: WeComSimulator, tmp_path: Path
) -> None:
    without_zhaolei = roster(tmp_path, (ZHAOLEI, ""))

    report = await load_org(without_zhaolei, datetime.now(UTC), ROSTER_MEDIA)

    assert (report.deactivated, [c.summary() for c in report.chats]) == (1, [
        "chat emergency02 (plan FIRE): 0 added, 1 removed",
        "chat emergency03 (plan GENERAL): 0 added, 1 removed",
        "chat emergency01 (plan NH3): 0 added, 1 removed"])
    # FIRE names him at two levels: whoever keeps the plans is told.
    assert report.gaps == tuple(
        f'plan FIRE, level {level}: "zhaolei" named but no longer in the roster; '
        "the plan does not call them" for level in ("二级", "三级"))
    await chats.until(lambda: not any("zhaolei" in chats.chats[c].userlist for c in CHATS), 10)
    assert set(chats.chats["emergency01"].userlist) == PLANT_RESPONSE - {"zhaolei"}
    assert set((await GroupChat.get(chat_id="emergency01")).members) == PLANT_RESPONSE - {
        "zhaolei"}
    await settled()
    queued = await OutboxMessage.all().count()

    again = await load_org(without_zhaolei, datetime.now(UTC), ROSTER_MEDIA)

    assert len(again.gaps) == 2   # still named, still said: the roster load cannot mend a plan
    assert [c.summary() for c in again.chats] == [
        f"chat {chat} (plan {plan}): 0 added, 0 removed"
        for chat, plan in (("emergency02", "FIRE"), ("emergency03", "GENERAL"),
                           ("emergency01", "NH3"))]
    assert await OutboxMessage.all().count() == queued


async def test_a_chat_change_wecom_refused_is_sent_again_by_the_next_load(
    chats: WeComSimulator, tmp_path: Path
) -> None:
    promoted = roster(tmp_path, (ZHANGSAN_ROLES, ZHANGSAN_ROLES.replace(
        '["worker"]', '["worker", "responder"]')))
    chats.fail_next("appchat/update", 60011, times=len(CHATS))   # the app not visible to all
    await load_org(promoted, datetime.now(UTC), ROSTER_MEDIA)
    await settled()
    assert not any("zhangsan" in chats.chats[c].userlist for c in CHATS)

    again = await load_org(promoted, datetime.now(UTC), ROSTER_MEDIA)

    assert [c.summary() for c in again.chats] == [
        f"chat {chat} (plan {plan}): 1 added, 0 removed (WeCom refused the previous change)"
        for chat, plan in (("emergency02", "FIRE"), ("emergency03", "GENERAL"),
                           ("emergency01", "NH3"))]
    await settled()
    assert all("zhangsan" in chats.chats[c].userlist for c in CHATS)
    queued = await OutboxMessage.all().count()
    third = await load_org(promoted, datetime.now(UTC), ROSTER_MEDIA)
    assert {c.summary().split(": ")[1] for c in third.chats} == {"0 added, 0 removed"}
    assert await OutboxMessage.all().count() == queued


async def test_a_chat_whose_creation_wecom_refused_is_created_by_the_next_load(
    running: WeComSimulator
) -> None:
    running.fail_next("appchat/create", 60011, times=len(CHATS))
    await load_plans(DEMO_PLANS, datetime.now(UTC), "wecom")
    await settled()
    assert not running.chats

    report = await load_org(DEMO_ORG, datetime.now(UTC), ROSTER_MEDIA)

    assert [c.refused for c in report.chats] == ["create"] * len(CHATS)
    assert report.chats[-1].summary() == (
        f"chat emergency01 (plan NH3): created again with {len(PLANT_RESPONSE)} people (WeCom "
        "refused it before)")
    await settled()
    assert set(running.chats["emergency01"].userlist) == PLANT_RESPONSE
    assert {c.summary().split(": ")[1] for c in (await load_org(
        DEMO_ORG, datetime.now(UTC), ROSTER_MEDIA)).chats} == {"0 added, 0 removed"}


@pytest.mark.parametrize("refused_first", [False, True], ids=["sent", "refused-then-sent"])
async def test_a_chat_whose_owner_is_no_longer_called_is_handed_to_the_next_commander(
    running: WeComSimulator, tmp_path: Path, refused_first: bool
) -> None:
    await small_chat(tmp_path, 'roles = ["commander"]\npeople = ["lihua", "huangjun"]')
    assert running.chats["emergency09"].owner == "chenjianguo"
    plain_principal = roster(tmp_path, ('roles = ["principal", "commander"]',
                                        'roles = ["principal"]'))
    if refused_first:
        # WeCom refuses the handover for good; the next load sends it again, owner named.
        running.fail_next("appchat/update", 60011)
        await load_org(plain_principal, datetime.now(UTC), ROSTER_MEDIA)
        await settled()
        assert running.chats["emergency09"].owner == "chenjianguo"

    report = await load_org(plain_principal, datetime.now(UTC), ROSTER_MEDIA)

    refused = " (WeCom refused the previous change)" if refused_first else ""
    assert [c.summary() for c in report.chats] == [
        f"chat emergency09 (plan SMALL): 0 added, 1 removed{refused}"]
    await running.until(lambda: running.chats["emergency09"].owner == "liuyang", 10)
    assert running.chats["emergency09"].userlist == ("liuyang", "zhouwei", "lihua", "huangjun")


async def test_a_plan_file_that_calls_one_more_person_adds_them_to_its_chat(
    running: WeComSimulator, tmp_path: Path
) -> None:
    folder = await small_chat(tmp_path, 'roles = ["commander"]\npeople = ["lihua"]')
    assert "huangjun" not in running.chats["emergency09"].userlist
    small_plan(folder, 'roles = ["commander"]\npeople = ["lihua", "huangjun"]')

    report = await load_plans(folder, datetime.now(UTC), "wecom")

    assert (report.updated, report.groups) == (1, 0)
    assert [c.summary() for c in report.chats] == [
        "chat emergency09 (plan SMALL): 1 added, 0 removed"]
    await running.until(lambda: "huangjun" in running.chats["emergency09"].userlist, 10)


async def test_a_chat_change_waits_until_the_previous_one_is_sent(
    org: None, tmp_path: Path
) -> None:
    await load_plans(DEMO_PLANS, NOW, "wecom")      # the creates stay queued: nothing sends them
    promoted = roster(tmp_path, (ZHANGSAN_ROLES, ZHANGSAN_ROLES.replace(
        '["worker"]', '["worker", "responder"]')))

    report = await load_org(promoted, LATER, ROSTER_MEDIA)

    assert report.updated == 1 and all(c.waiting for c in report.chats)
    assert report.chats[-1].summary() == (
        "chat emergency01 (plan NH3): left as it is: its previous change is not sent yet; load "
        "again once it is")
    assert not await OutboxMessage.filter(kind="group_update").exists()
    assert "zhangsan" not in (await GroupChat.get(chat_id="emergency01")).members


async def test_a_chat_the_plans_would_fill_beyond_2000_is_left_as_it_is_and_the_roster_loads(
    org: None, database_url: str, tmp_path: Path
) -> None:
    await load_plans(DEMO_PLANS, NOW, "wecom")
    before = await GroupChat.all().order_by("chat_id").values("chat_id", "members", "version")
    crowd = "".join(f'\n[[users]]\nid = "r{n:04}"\nname = "队员{n}"\nroles = ["responder"]\n'
                    for n in range(1990))
    path = roster(tmp_path, (ZHAOLEI, ""), extra=crowd)
    env = {"SAFETYBOT_DATABASE_URL": database_url, "SAFETYBOT_LOG_LEVEL": "WARNING"}

    done = await asyncio.to_thread(cli, "load-org", str(path), env=env)

    assert done.returncode == 0, done.stderr
    counts = {"emergency02": ("FIRE", 2001), "emergency03": ("GENERAL", 2002),
              "emergency01": ("NH3", 2001)}
    said = [f"chat {chat} (plan {plan}): left as it is: plan {plan} now calls {people} people "
            "and WeCom takes 2 to 2000 in a chat" for chat, (plan, people) in counts.items()]
    gaps = [f'plan FIRE, level {level}: "zhaolei" named but no longer in the roster; the plan '
            "does not call them" for level in ("二级", "三级")]
    assert done.stdout.splitlines() == [
        f"safetybot: {path}: 5 departments, 2007 users, 6 areas: 1990 created, 0 updated, "
        "29 unchanged, 1 deactivated", *(f"safetybot: {line}" for line in said),
        *(f"safetybot: warning: {gap}" for gap in gaps)]
    logged = [json.loads(line) for line in done.stderr.splitlines()]
    assert [(e["level"], e["msg"], e.get("chat_id"), e.get("people")) for e in logged] == [
        ("warning", line, chat, people)
        for line, (chat, (_, people)) in zip(said, counts.items(), strict=True)] + [
        ("warning", gap, None, None) for gap in gaps]
    assert await User.filter(active=True).count() == 17 + 1990
    # Left as it is: 赵磊, who has left, is not removed either.
    assert await GroupChat.all().order_by("chat_id").values(
        "chat_id", "members", "version") == before
    assert not await OutboxMessage.filter(kind="group_update").exists()
