"""Modules switched per plant (`[modules]`): a module switched off has no commands, cards, jobs or
lines in 帮助, and its words are answered 该功能暂未开通 instead of being taken by another module.
Through the real service and the WeCom simulator, with the demo plant."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tortoise.context import TortoiseContext

from bot.app import hazard_rules, scheduled_jobs
from bot.db import ORM, activate
from bot.media.folder import FolderStore
from bot.plans import load_plans
from handlers.replies import NOT_AVAILABLE, UNKNOWN, UNKNOWN_WITHOUT_HAZARDS
from models.emergency import Activation
from models.hazard import Ticket
from scheduler.jobs import TickReport
from simulator.wecom import WeComSimulator
from tests.harness import ROOT, Service, cli, settled
from tests.plant import Person, photo, plant, text_of

PLANS = ROOT / "config" / "plans"


async def tick(service: Service) -> TickReport:
    """Every scheduled job of the service's settings, once, as of its clock, on its own
    connection (SQLite has one writer)."""
    async def run() -> TickReport:
        assert service.app is not None
        activate(service.app[ORM])
        media = FolderStore(Path(service.settings.media_dir))
        jobs = scheduled_jobs(service.settings, media, hazard_rules(service.settings, media))
        return await jobs.tick(service.clock())

    return await asyncio.create_task(run())


async def test_a_plant_without_emergency_plans_answers_their_words_not_available(
        db: TortoiseContext, database_url: str, media_dir: Path) -> None:
    async with plant(database_url, media_dir, modules_emergency="off") as (sim, service):
        zhouwei, lihua = Person(sim, "zhouwei"), Person(sim, "lihua")
        await zhouwei.says("启动预案 氨泄漏 二级 3号车间")
        await zhouwei.expect(NOT_AVAILABLE)
        await lihua.says("收到")
        await lihua.expect(NOT_AVAILABLE)
        await lihua.says("一键报警 3号车间 氨味很重")
        await lihua.expect(NOT_AVAILABLE)
        # A card of the module (from before it was switched off) changes nothing either.
        await sim.user("lihua").clicks("emgc-1-0000", "emg:go:1:0000", "code-x", None)
        await lihua.expect(NOT_AVAILABLE)
        await lihua.says("帮助")
        shown = text_of(await lihua.expect("使用说明"))
        assert "上报隐患" in shown and "一键报警" not in shown
        # The hazard module works as before.
        await lihua.sends_photo(photo())
        await lihua.expect("已收到照片")
        await settled()
        assert await Activation.all().count() == 0
        report = await tick(service)
        assert "emergency" not in report.done and "ladders" in report.done


async def test_a_plant_with_emergency_plans_only_leaves_photos_and_tickets_alone(
        db: TortoiseContext, database_url: str, media_dir: Path) -> None:
    async with plant(database_url, media_dir, modules_hazard="false") as (sim, service):
        await load_plans(PLANS, service.clock(), "wecom")
        lihua, zhouwei = Person(sim, "lihua"), Person(sim, "zhouwei")
        await lihua.sends_photo(photo())
        await lihua.expect(NOT_AVAILABLE)
        await lihua.says("我的隐患")
        await lihua.expect(NOT_AVAILABLE)
        await lihua.says("上报")
        await lihua.expect(NOT_AVAILABLE)
        # Words another module would have taken for a report are not understood, plainly.
        await lihua.says("3号车间 配电箱门没关")
        await lihua.expect(UNKNOWN_WITHOUT_HAZARDS)
        await lihua.says("帮助")
        shown = text_of(await lihua.expect("使用说明"))
        assert "一键报警" in shown and "上报隐患" not in shown
        await zhouwei.says("启动预案 氨泄漏 二级 3号车间")
        await zhouwei.expect("请确认启动预案")
        await settled()
        assert await Ticket.all().count() == 0
        report = await tick(service)
        assert "emergency" in report.done
        assert not {"ladders", "alarms", "digest", "monthly", "risk"} & set(report.done)


async def test_a_plant_without_training_answers_its_words_not_available(
        db: TortoiseContext, database_url: str, media_dir: Path) -> None:
    async with plant(database_url, media_dir, modules_training="off") as (sim, service):
        gaofeng = Person(sim, "gaofeng")
        for words in ("学习", "我的培训", "布置培训 动火作业安全 设备部 12月20日"):
            await gaofeng.says(words)
            await gaofeng.expect(NOT_AVAILABLE)
        await sim.user("gaofeng").clicks("quiz-1-0-1", "train:quiz:1:0:0000:A", "code-x", None)
        await gaofeng.expect(NOT_AVAILABLE)
        await gaofeng.says("帮助")
        assert "我的培训" not in text_of(await gaofeng.expect("使用说明"))
        report = await tick(service)
        assert not {"training", "training-week"} & set(report.done)


def test_check_config_lists_the_modules_on_and_refuses_bad_switches(tmp_path: Path) -> None:
    env = {"SAFETYBOT_DATABASE_URL": f"sqlite://{tmp_path}/db.sqlite3"}
    shown = cli("check-config", env={**env, "SAFETYBOT_MODULES_EMERGENCY": "off"})
    assert shown.returncode == 0, shown.stderr
    assert "modules on: hazard, qualification, training, inspection, dashboard\n" in shown.stdout
    assert "qualification: 13 certificate types, 8 work types\n" in shown.stdout
    assert "training: 4 courses\n" in shown.stdout
    assert "inspection: 8 checkpoints, 3 routes, 3 plans\n" in shown.stdout
    bad = cli("check-config", env={**env, "SAFETYBOT_MODULES_HAZARD": "maybe"})
    assert bad.returncode != 0
    assert "SAFETYBOT_MODULES_HAZARD: expected true or false, got 'maybe'" in bad.stderr
    none = cli("check-config", env={**env, "SAFETYBOT_MODULES_HAZARD": "no",
                                    "SAFETYBOT_MODULES_EMERGENCY": "0",
                                    "SAFETYBOT_MODULES_QUALIFICATION": "false",
                                    "SAFETYBOT_MODULES_TRAINING": "off",
                                    "SAFETYBOT_MODULES_INSPECTION": "off",
                                    "SAFETYBOT_MODULES_DASHBOARD": "off"})
    assert none.returncode != 0 and "switch on at least one" in none.stderr
    unknown = cli("check-config", env={**env, "SAFETYBOT_MODULES_PAYROLL": "on"})
    assert unknown.returncode != 0
    assert "SAFETYBOT_MODULES_PAYROLL: unknown setting" in unknown.stderr


async def test_a_plant_without_patrols_answers_their_scans_not_available(
        db: TortoiseContext, database_url: str, media_dir: Path) -> None:
    """A scan and `巡检` are patrols' own; a photo and code-shaped text are not claimed, so a
    photo still starts a report."""
    async with plant(database_url, media_dir, modules_inspection="off") as (sim, service):
        assert isinstance(sim, WeComSimulator)
        huangjun = Person(sim, "huangjun")
        await huangjun.says("巡检")
        await huangjun.expect(NOT_AVAILABLE)
        await sim.user("huangjun").scans("SBX1:A1-01:AAAAAAAAAAAAAAAA")
        await huangjun.expect(NOT_AVAILABLE)
        await huangjun.says("A1-01")
        await huangjun.expect(UNKNOWN)
        await huangjun.sends_photo()
        await huangjun.expect("请问隐患在哪个区域")
        await huangjun.says("帮助")
        assert "巡检" not in text_of(await huangjun.expect("使用说明"))
        report = await tick(service)
        assert "rounds" not in report.done
