"""The inspection files loaded into the demo plant, and the labels printed from them: a bad
file is refused whole with every bad entry named; loading again changes nothing; an entry gone
from the files is deactivated; the printed PDF's QR codes read back to their checkpoints, and
verify only with this plant's key."""

from __future__ import annotations

import io
import shutil
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pypdf
import pytest
from tortoise.context import TortoiseContext

from bot.inspection import InspectionConfigError, load_inspections
from bot.media.qr import decode_qr
from bot.roster import load_org
from bot.settings import SHIPPED_CONFIG
from models.catalog import load_catalog
from models.inspection.codes import read_payload, signing_key
from models.inspection.sites import Checkpoint, Route
from tests.harness import ROSTER_MEDIA, cli
from tests.unit.test_labels import images_in_reading_order

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
SITES = SHIPPED_CONFIG / "inspection"
CATEGORIES = [c.code for c in load_catalog(SHIPPED_CONFIG / "categories.toml").categories]


@pytest.fixture
async def org(db: TortoiseContext) -> None:
    await load_org(SHIPPED_CONFIG / "demo-org.toml", NOW, ROSTER_MEDIA)


def folder(tmp_path: Path, extra: str = "", *, drop: str = "") -> Path:
    """The demo files, with `extra` appended to sites.toml and `drop` taken out of it."""
    target = tmp_path / "inspection"
    shutil.copytree(SITES, target)
    sites = target / "sites.toml"
    text = sites.read_text(encoding="utf-8")
    assert not drop or drop in text
    sites.write_text(text.replace(drop, "") + extra, encoding="utf-8")
    return target


async def test_the_demo_files_load_and_again_change_nothing(org: None, tmp_path: Path) -> None:
    first = await load_inspections(SITES, CATEGORIES, NOW)
    assert (first.checkpoints, first.routes, first.plans, first.created) == (8, 3, 3, 18)
    again = await load_inspections(SITES, CATEGORIES, NOW)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 18)
    gone = '''[[checkpoint]]
code = "W1-01"
name = "成品仓库消防点"
area = "W1"
checklist = "FIRE"
point = [520, 260]
'''
    fewer = folder(tmp_path, drop=gone)
    (fewer / "sites.toml").write_text((fewer / "sites.toml").read_text(encoding="utf-8").replace(
        '["E1-01", "W1-01"]', '["E1-01"]'), encoding="utf-8")
    third = await load_inspections(fewer, CATEGORIES, NOW)
    assert third.deactivated == 1
    assert not (await Checkpoint.get(code="W1-01")).active
    assert (await Route.get(code="R-UTIL")).checkpoints == ["E1-01"]


async def test_a_bad_file_is_refused_whole_naming_every_bad_entry(org: None,
                                                                  tmp_path: Path) -> None:
    bad = folder(tmp_path, '''
[[route]]
code = "R-BAD"
name = "错误路线"
checkpoints = ["A1-01", "ZZ-99"]

[[checkpoint]]
code = "A1-09"
name = "无清单"
area = "A1"
checklist = "NOPE"

[[plan]]
code = "P-BAD"
route = "R-NONE"
people = ["nobody"]
frequency = "hourly"
window = "10:00-08:00"
''')
    (bad / "more.toml").write_text('''
[[checklist]]
code = "BAD-LIST"
title = "坏清单"
category = "F02"
  [[checklist.item]]
  id = "p"
  text = "压力"
  kind = "reading"
''', encoding="utf-8")
    with pytest.raises(InspectionConfigError) as refused:
        await load_inspections(bad, CATEGORIES, NOW)
    problems = "\n".join(refused.value.problems)
    assert 'route R-BAD: checkpoint "ZZ-99" is not defined' in problems
    assert 'checkpoint A1-09: checklist "NOPE" is not defined' in problems
    assert "plan[3] (P-BAD): frequency \"hourly\"" in problems
    assert "item[0]: a reading needs its unit and min or max" in problems
    assert await Checkpoint.all().count() == 0             # nothing written

    unknown_person = folder(tmp_path / "2", '''
[[plan]]
code = "P-NEW"
route = "R-PROD"
people = ["nobody"]
frequency = "daily"
window = "08:00-09:00"
''')
    with pytest.raises(InspectionConfigError, match='plan P-NEW: "nobody" is not an active'):
        await load_inspections(unknown_person, CATEGORIES, NOW)


async def test_the_printed_labels_read_back_to_their_checkpoints(
        org: None, database_url: str, media_dir: Path, tmp_path: Path) -> None:
    await load_inspections(SITES, CATEGORIES, NOW)
    pdf = tmp_path / "labels.pdf"
    env = {"SAFETYBOT_DATABASE_URL": database_url, "SAFETYBOT_MEDIA_DIR": str(media_dir)}
    done = cli("print-checkpoints", "--out", str(pdf), env=env)
    assert done.returncode == 0, done.stderr
    assert "8 labels on 1 page" in done.stdout
    page = pypdf.PdfReader(io.BytesIO(pdf.read_bytes())).pages[0]
    key = await signing_key()
    read = [read_payload(key, text) for name in images_in_reading_order(page)
            for text in decode_qr(page.images[name].data)]
    assert read == sorted(c.code for c in await Checkpoint.all())
    assert all(read_payload(b"another plant", decode_qr(page.images[name].data)[0]) != code
               for name, code in zip(images_in_reading_order(page), read, strict=True))

    one_area = cli("print-checkpoints", "--area", "罐区", "--out", str(tmp_path / "t1.pdf"),
                   env=env)
    assert one_area.returncode == 0 and "2 labels" in one_area.stdout
    nowhere = cli("print-checkpoints", "--area", "火星", "--out", str(tmp_path / "x.pdf"),
                  env=env)
    assert nowhere.returncode == 1 and "no area" in nowhere.stderr
