"""`safetybot load-org`: the plant's org chart from a TOML roster, loaded whole or not at all."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from tortoise.context import TortoiseContext

from bot.media.folder import FolderStore
from bot.roster import RosterError, RosterReport, load_org, parse_roster
from models import transaction
from models.audit import AuditEvent
from models.org import Area, Department, RiskColor, Role, User, every_area
from models.people.certificates import Certificate, HolderKind
from models.people.profiles import Contractor, Profile
from models.people.records import RecordKind, records_of
from tests.harness import ROSTER_MEDIA

DEMO = Path(__file__).parents[2] / "config" / "demo-org.toml"
NOW = datetime(2026, 11, 29, 1, 30, tzinfo=UTC)

# users[0..3] are zhangsan, lisi, wangwu, zhaoliu; areas[0..1] are A1, A3.
BASE = """\
[[departments]]
id = "prod"
name = "生产部"

[[departments]]
id = "office"
name = "厂部"

[[users]]
id = "zhangsan"
name = "张三"
department = "prod"
roles = ["worker"]
supervisor = "lisi"

[[users]]
id = "lisi"
name = "李四"
department = "prod"
roles = ["reviewer"]
supervisor = "wangwu"

[[users]]
id = "wangwu"
name = "王五"
department = "prod"
roles = ["owner", "reviewer"]
supervisor = "zhaoliu"

[[users]]
id = "zhaoliu"
name = "赵六"
department = "office"
roles = ["principal", "commander"]

[[areas]]
code = "A1"
name = "1号车间"
aliases = ["一号车间"]
owner = "wangwu"
reviewer = "lisi"
risk_color = "黄"

[[areas]]
code = "A3"
name = "3号车间"
aliases = ["三号车间", "3车间"]
owner = "wangwu"
reviewer = "lisi"
risk_color = "橙"
groups = ["area-a3"]
"""


def edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} must occur once"
    return text.replace(old, new)


def roster_file(tmp_path: Path, text: str, name: str = "org.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


async def snapshot() -> dict[str, Any]:
    """Everything a load may touch, to show that a refused file touched nothing."""
    return {
        "departments": await Department.all().order_by("id").values(),
        "users": await User.all().order_by("id").values(),
        "areas": await Area.all().order_by("code").values(),
        "audit": await AuditEvent.all().count(),
    }


async def chain_above(user_id: str) -> list[str]:
    chain: list[str] = []
    user = await User.get(id=user_id)
    while user.supervisor_id is not None:  # type: ignore[attr-defined]
        user = await User.get(id=user.supervisor_id)  # type: ignore[attr-defined]
        chain.append(user.id)
    return chain


async def test_demo_plant_loads_with_a_supervisor_chain_to_the_principal(
    db: TortoiseContext,
) -> None:
    report = await load_org(DEMO, NOW, ROSTER_MEDIA)

    assert report == RosterReport(departments=5, users=18, areas=6, created=30, updated=0,
                                  unchanged=0, deactivated=0)
    assert report.summary() == ("5 departments, 18 users, 6 areas: 30 created, 0 updated, "
                                "0 unchanged, 0 deactivated")
    assert await chain_above("zhangsan") == ["wangqiang", "zhouwei", "chenjianguo"]
    assert await chain_above("wanghaiyan") == ["huangjun", "lihua", "zhouwei", "chenjianguo"]
    principal = await User.get(id="chenjianguo")
    assert principal.has_role(Role.PRINCIPAL) and principal.name == "陈建国"
    roles = {role for user in await User.all() for role in user.roles}
    assert roles == {r.value for r in Role}
    workshop = await Area.get(code="A3")
    assert workshop.name == "3号车间" and "三号车间" in workshop.aliases
    assert workshop.owner_id == "lihua" and workshop.risk_color == RiskColor.RED  # type: ignore[attr-defined]
    assert {a.risk_color for a in await Area.all()} == set(RiskColor)
    events = await AuditEvent.filter(actor="roster").order_by("id")
    assert len(events) == 30 and all(e.at == NOW for e in events)
    zhangsan = next(e for e in events if e.subject_id == "zhangsan")
    assert (zhangsan.action, zhangsan.subject_type) == ("org.user.created", "user")
    assert zhangsan.data["after"]["supervisor_id"] == "wangqiang"
    # The person's file: posts, certificates (dates left out follow the type's rule), the
    # contractor with its documents and its worker.
    welder = await Certificate.get(holder_id="huangjun")
    assert (welder.type_code, welder.expires_on, welder.review_on) == (
        "T-WELD", date(2031, 6, 2), date(2028, 6, 2))
    assert (await Profile.get(person_id="huaan-zhaogang")).contractor_id == "huaan"
    assert (await Contractor.get(id="huaan")).contract_end == date(2027, 6, 30)
    assert await Certificate.filter(holder_kind=HolderKind.CONTRACTOR,
                                    holder_id="huaan").count() == 2
    assert [r.kind for r in await records_of("gaofeng")] == [RecordKind.PROFILE,
                                                             RecordKind.CERTIFICATE]


async def test_loading_the_same_file_again_changes_nothing(db: TortoiseContext) -> None:
    await load_org(DEMO, NOW, ROSTER_MEDIA)
    before = await snapshot()

    report = await load_org(DEMO, NOW, ROSTER_MEDIA)

    assert (report.created, report.updated, report.unchanged, report.deactivated) == (0, 0, 30, 0)
    assert await snapshot() == before


async def test_a_changed_file_updates_only_what_changed(
    db: TortoiseContext, tmp_path: Path
) -> None:
    await load_org(roster_file(tmp_path, BASE), NOW, ROSTER_MEDIA)
    last = await AuditEvent.all().order_by("-id").first()
    assert last is not None
    changed = edit(BASE, 'risk_color = "橙"', 'risk_color = "红"')
    changed = edit(changed, 'id = "zhangsan"\nname = "张三"\ndepartment = "prod"\n'
                            'roles = ["worker"]\nsupervisor = "lisi"',
                   'id = "zhangsan"\nname = "张三"\ndepartment = "prod"\n'
                   'roles = ["worker", "responder"]\nsupervisor = "wangwu"')

    report = await load_org(roster_file(tmp_path, changed), NOW, ROSTER_MEDIA)

    assert (report.created, report.updated, report.unchanged, report.deactivated) == (0, 2, 6, 0)
    assert (await Area.get(code="A3")).risk_color == RiskColor.RED
    zhangsan = await User.get(id="zhangsan")
    assert zhangsan.roles == ["worker", "responder"]
    assert zhangsan.supervisor_id == "wangwu"  # type: ignore[attr-defined]
    events = await AuditEvent.filter(id__gt=last.id).order_by("id")
    assert [(e.action, e.subject_id) for e in events] == [
        ("org.user.updated", "zhangsan"), ("org.area.updated", "A3")]
    assert events[0].note == "changed: roles, supervisor_id"
    assert events[1].data == {"before": {"risk_color": "橙"}, "after": {"risk_color": "红"}}


async def test_someone_left_out_is_deactivated_and_comes_back_when_listed_again(
    db: TortoiseContext, tmp_path: Path
) -> None:
    await load_org(roster_file(tmp_path, BASE), NOW, ROSTER_MEDIA)
    without_zhangsan = BASE.replace(BASE[BASE.index('[[users]]\nid = "zhangsan"'):
                                         BASE.index('[[users]]\nid = "lisi"')], "")

    report = await load_org(roster_file(tmp_path, without_zhangsan), NOW, ROSTER_MEDIA)

    assert (report.users, report.updated, report.unchanged, report.deactivated) == (3, 0, 7, 1)
    zhangsan = await User.get(id="zhangsan")  # kept: tickets refer to people
    assert not zhangsan.active and zhangsan.supervisor_id == "lisi"  # type: ignore[attr-defined]
    again = await load_org(roster_file(tmp_path, without_zhangsan), NOW, ROSTER_MEDIA)
    assert (again.updated, again.deactivated) == (0, 0)

    back = await load_org(roster_file(tmp_path, BASE), NOW, ROSTER_MEDIA)

    assert (back.created, back.updated, back.deactivated) == (0, 1, 0)
    assert (await User.get(id="zhangsan")).active
    actions = await AuditEvent.filter(subject_id="zhangsan").order_by("id").values_list(
        "action", flat=True)
    assert actions == ["org.user.created", "org.user.deactivated", "org.user.reactivated"]


async def test_areas_can_swap_names_in_one_load(db: TortoiseContext, tmp_path: Path) -> None:
    await load_org(roster_file(tmp_path, BASE), NOW, ROSTER_MEDIA)
    swapped = BASE[:BASE.index("[[areas]]")] + (
        '[[areas]]\ncode = "A1"\nname = "3号车间"\naliases = ["三号车间", "3车间"]\n'
        'owner = "wangwu"\nreviewer = "lisi"\nrisk_color = "黄"\n\n'
        '[[areas]]\ncode = "A3"\nname = "1号车间"\naliases = ["一号车间"]\n'
        'owner = "wangwu"\nreviewer = "lisi"\nrisk_color = "橙"\ngroups = ["area-a3"]\n'
    )

    report = await load_org(roster_file(tmp_path, swapped), NOW, ROSTER_MEDIA)

    assert (report.updated, report.unchanged) == (2, 6)
    assert {a.code: a.name for a in await Area.all()} == {"A1": "3号车间", "A3": "1号车间"}


TOP_OF_A3 = 'code = "A3"\nname = "3号车间"\naliases = ["三号车间", "3车间"]'
BAD_ROSTERS = {
    "unknown supervisor": (
        edit(BASE, 'supervisor = "zhaoliu"', 'supervisor = "nobody"'),
        'users[2] (id="wangwu"): supervisor "nobody" is not in the roster'),
    "supervisor cycle": (
        edit(BASE, 'roles = ["principal", "commander"]',
             'roles = ["principal", "commander"]\nsupervisor = "zhangsan"'),
        'users[0] (id="zhangsan"): supervisor cycle zhangsan -> lisi -> wangwu -> zhaoliu'
        " -> zhangsan"),
    "own supervisor": (
        edit(BASE, 'supervisor = "lisi"', 'supervisor = "zhangsan"'),
        'users[0] (id="zhangsan"): a user cannot supervise themself'),
    "duplicate user id": (
        BASE + '\n[[users]]\nid = "lisi"\nname = "李四"\n',
        'users[4] (id="lisi"): id "lisi" is already used by users[1]'),
    "unknown role": (
        edit(BASE, 'roles = ["owner", "reviewer"]', 'roles = ["owner", "boss"]'),
        'users[2] (id="wangwu"): role "boss" must be one of worker/owner/reviewer/'
        "safety_manager/principal/commander/responder/admin"),
    "bad risk colour": (
        edit(BASE, 'risk_color = "橙"', 'risk_color = "紫"'),
        'areas[1] (code="A3"): risk_color "紫" must be one of 红/橙/黄/蓝'),
    "missing required key": (
        edit(BASE, 'name = "李四"\n', ""),
        'users[1] (id="lisi"): missing required key "name"'),
    "unknown key": (
        edit(BASE, 'supervisor = "lisi"', 'superviser = "lisi"'),
        'users[0] (id="zhangsan"): unknown key "superviser"; allowed: id, name, department, '
        "roles, supervisor, mobile, platform, platform_id, post, hired_on, post_since, "
        "contractor, certificates"),
    "unknown certificate type": (
        edit(BASE, 'supervisor = "lisi"',
             'certificates = [{ type = "T-XX", number = "1", issued_on = 2024-01-01 }]'),
        "users[0]: certificate type \"T-XX\" is not a person's type in certificates.toml"),
    "certificate date": (
        edit(BASE, 'supervisor = "lisi"',
             'certificates = [{ type = "T-WELD", number = "1", issued_on = "2024-13-01" }]'),
        'users[0] (id="zhangsan") certificates[0]: issued_on "2024-13-01" is not a date like '
        "2026-12-07"),
    "unknown platform": (
        edit(BASE, 'supervisor = "lisi"', 'platform = "feishu"'),
        'users[0] (id="zhangsan"): platform "feishu" must be one of wecom/dingtalk/webchat'),
    "one id twice on a platform": (
        edit(BASE, 'supervisor = "lisi"', 'platform_id = "lisi"'),
        'users[1] (id="lisi"): "lisi" on the first platform is already users[0] (id="zhangsan")'),
    "unknown department": (
        edit(BASE, 'department = "office"', 'department = "qa"'),
        'users[3] (id="zhaoliu"): department "qa" is not in the roster'),
    "unknown area owner": (
        edit(BASE, TOP_OF_A3 + '\nowner = "wangwu"', TOP_OF_A3 + '\nowner = "wangermazi"'),
        'areas[1] (code="A3"): owner "wangermazi" is not in the roster'),
    "malformed TOML": (
        edit(BASE, 'name = "厂部"', 'name = 厂部'),
        "not valid TOML: Invalid value (at line 7, column 8)"),
    "alias is another area's name": (
        edit(BASE, '["三号车间", "3车间"]', '["三号车间", "1号车间"]'),
        'areas[1] (code="A3"): alias "1号车间" is already the name of areas[0] (code="A1")'),
    "a camera URL a link would break": (
        edit(BASE, '["三号车间", "3车间"]',
             '["三号车间", "3车间"]\ncameras = [{ name = "东门", url = "https://nvr/a3 (东)" }]'),
        'areas[1] (code="A3"): cameras[1] must be { name = "…" (30 characters at most), '
        'url = "https://…" (no spaces or brackets) }'),
    "aliases not a list of strings": (
        edit(BASE, '["三号车间", "3车间"]', '"三号车间"'),
        'areas[1] (code="A3"): aliases must be a list of non-empty strings'),
    "id not a string": (
        edit(BASE, 'id = "office"', "id = 7"),
        'departments[1]: id must be a string, not an integer'),
    "unknown section": (
        BASE + '\n[[user]]\nid = "qianqi"\nname = "钱七"\n',
        'unknown section "user"; expected departments, users, areas, contractors'),
    "no users": (
        BASE[:BASE.index("[[users]]")],
        "the roster lists no users ([[users]])"),
}


@pytest.mark.parametrize("text, message", BAD_ROSTERS.values(), ids=BAD_ROSTERS.keys())
async def test_a_bad_roster_is_refused_whole_and_changes_nothing(
    db: TortoiseContext, tmp_path: Path, text: str, message: str
) -> None:
    await load_org(roster_file(tmp_path, BASE), NOW, ROSTER_MEDIA)
    before = await snapshot()
    # Adding a new person alongside the mistake shows that nothing of the file was written.
    text += '\n[[users]]\nid = "qianqi"\nname = "钱七"\n' if "[[users]]" in text else ""

    with pytest.raises(RosterError) as refused:
        await load_org(roster_file(tmp_path, text, "bad.toml"), NOW, ROSTER_MEDIA)

    assert str(refused.value) == message
    assert "\n" not in str(refused.value)
    assert await snapshot() == before


async def test_an_area_name_kept_by_an_area_left_out_of_the_file_is_refused(
    db: TortoiseContext, tmp_path: Path
) -> None:
    await Area.create(code="W9", name="旧仓库", aliases=["老仓库"])
    before = await snapshot()
    text = edit(BASE, '["三号车间", "3车间"]', '["三号车间", "老仓库"]')

    with pytest.raises(RosterError, match=r'^areas\[1\] \(code="A3"\): "老仓库" already names '
                                          r'area "W9", which is in the database but not in'):
        await load_org(roster_file(tmp_path, text), NOW, ROSTER_MEDIA)

    assert await snapshot() == before


async def test_a_missing_file_is_a_roster_error(db: TortoiseContext, tmp_path: Path) -> None:
    with pytest.raises(RosterError, match=r"^cannot read the roster: No such file or directory$"):
        await load_org(tmp_path / "absent.toml", NOW, ROSTER_MEDIA)


def test_the_demo_roster_parses_into_frozen_entries() -> None:
    roster = parse_roster(DEMO.read_text(encoding="utf-8"))

    assert [d.name for d in roster.departments] == ["厂部", "生产部", "设备部", "安全环保部",
                                                     "仓储物流部"]
    zhangsan = next(u for u in roster.users if u.id == "zhangsan")
    assert zhangsan.roles == (Role.WORKER,) and zhangsan.supervisor == "wangqiang"
    with pytest.raises(AttributeError):
        zhangsan.name = "张三丰"  # type: ignore[misc]


async def test_the_shared_area_list_follows_every_change(db: TortoiseContext) -> None:
    """Built once and shared while the table stays as it is; any insert, update or delete, and
    a change in the reader's own transaction, is seen by the next read; a rolled-back one not."""
    async def names() -> list[str]:
        return [a.name for a in await every_area()]

    await Area.create(code="A1", name="1号车间")
    first = await every_area()
    assert [a.name for a in first] == ["1号车间"]
    assert await every_area() is first
    await Area.filter(code="A1").update(name="一车间")
    assert await names() == ["一车间"]
    await Area.create(code="A2", name="2号车间")
    assert await names() == ["一车间", "2号车间"]
    await Area.filter(code="A1").delete()
    assert await names() == ["2号车间"]
    with pytest.raises(ZeroDivisionError):
        async with transaction():
            await Area.filter(code="A2").update(name="二车间")
            assert await names() == ["二车间"]
            raise ZeroDivisionError
    assert await names() == ["2号车间"]


# ---------------------------------------------------------------------------------------------
# Evacuation maps (疏散图)

PNG = b"\x89PNG\r\n\x1a\n" + b"map of workshop 3" * 20
WITH_MAP = edit(BASE, 'groups = ["area-a3"]\n', 'groups = ["area-a3"]\nmap = "maps/a3.png"\n')


async def test_an_areas_map_is_kept_in_the_media_store_and_the_area_names_it(
    db: TortoiseContext, tmp_path: Path, media_dir: Path
) -> None:
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "a3.png").write_bytes(PNG)
    store = FolderStore(media_dir)
    await load_org(roster_file(tmp_path, WITH_MAP), NOW, store)
    a3 = await Area.get(code="A3")
    assert a3.map_digest is not None and await store.get(a3.map_digest) == PNG
    assert (await Area.get(code="A1")).map_digest is None
    # A new picture under the same name is a new map; a roster without it, none.
    (tmp_path / "maps" / "a3.png").write_bytes(PNG + b"redrawn")
    await load_org(roster_file(tmp_path, WITH_MAP), NOW, store)
    redrawn = (await Area.get(code="A3")).map_digest
    assert redrawn not in (None, a3.map_digest) and await store.exists(redrawn or "")
    report = await load_org(roster_file(tmp_path, BASE), NOW, store)
    assert report.updated == 1 and (await Area.get(code="A3")).map_digest is None


BAD_MAPS = {
    "missing": (None, 'areas[1] (code="A3"): map "maps/a3.png": No such file or directory'),
    "not an image": (b"%PDF-1.7 not a picture",
                     'areas[1] (code="A3"): map "maps/a3.png" is not a PNG or JPEG image'),
    "too large": (PNG + bytes(10 * 1024 * 1024),
                  'areas[1] (code="A3"): map "maps/a3.png" is 10.0 MB; an image may be 10 MB '
                  'at most'),
}


@pytest.mark.parametrize("data, message", BAD_MAPS.values(), ids=BAD_MAPS.keys())
async def test_a_map_that_is_missing_not_an_image_or_too_large_is_refused_with_the_roster(
    db: TortoiseContext, tmp_path: Path, media_dir: Path, data: bytes | None, message: str
) -> None:
    await load_org(roster_file(tmp_path, BASE), NOW, ROSTER_MEDIA)
    before = await snapshot()
    if data is not None:
        (tmp_path / "maps").mkdir()
        (tmp_path / "maps" / "a3.png").write_bytes(data)

    with pytest.raises(RosterError) as refused:
        await load_org(roster_file(tmp_path, WITH_MAP), NOW, FolderStore(media_dir))

    assert str(refused.value) == message
    assert await snapshot() == before
    assert not await asyncio.to_thread(lambda: [p for p in media_dir.rglob("*") if p.is_file()])
