"""The category library: how words become categories, grades and defect types, and how a bad
library file is refused whole with its entry named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from models.catalog import CatalogError, Category, DefectType, Grade, load_catalog
from tests.harness import ROOT, cli

LIBRARY = ROOT / "config" / "categories.toml"


CATALOG = load_catalog(LIBRARY)


def category(code: str) -> Category:
    found = CATALOG.get(code)
    assert found is not None
    return found


def test_keywords_numbers_and_names_find_a_category() -> None:
    def code(found: Category | None) -> str:
        return found.code if found else ""

    assert code(CATALOG.find("配电箱门没关 有裸露电线")) == "H01"
    assert code(CATALOG.find("今天天气不错")) == ""
    assert code(CATALOG.answer("2")) == "F02"
    assert code(CATALOG.answer("消防")) == "F02"
    assert code(CATALOG.answer("g08")) == "G08"
    assert code(CATALOG.answer("99")) == ""


def test_major_needs_two_conditions_and_says_which() -> None:
    one_word = CATALOG.suggest("液氨储罐标识褪色", category("C04"))
    assert one_word.grade is Grade.GENERAL
    both = CATALOG.suggest("液氨管道法兰泄漏", category("C04"))
    assert both.grade is Grade.MAJOR
    assert "「液氨」" in both.grade_reason and "「泄漏」" in both.grade_reason
    assert "液氨制冷" in both.grade_reason


# Real phrasings with the grade a safety manager expects. 重大 only when one finding (a clause)
# meets every condition of a rule; the near misses mention a rule's words in separate findings,
# deny them, or meet one condition only.
MAJOR = [
    "冷库液氨管道阀门处有泄漏，能闻到刺鼻气味",
    "氨压缩机房地面有氨泄漏",
    "液氨储罐法兰漏气",
    "制冷车间液氨跑冒，请马上处理",
    "新来的焊工无证上岗",
    "叉车司机未持证驾驶叉车",
    "锅炉房司炉没有证就在操作",
    "电工无证接线",
    "特种作业人员未持证作业",
    "污水池有限空间作业未检测就下人",
    "受限空间作业无人监护",
    "有限空间未通风就进入作业",
    "3号罐有限空间清理没人监护",
    "打磨车间粉尘积尘严重",
    "粉尘车间除尘器停了还在生产",
    "抛光间粉尘区域有电焊火花",
    "粉尘作业区未除尘就开工",
    "锅炉安全阀拆除了",
    "空压机储气罐压力表过期未校验",
    "蒸汽管道安全阀失效",
    "安全阀、压力表都过期了",
    "2号锅炉压力表未校验\n请安排检测",
]
NEAR_MISSES = [
    "二号仓库的灭火器过期了，压力表指针在红区",
    "液氨储罐区巡检正常，无泄漏",
    "液氨管道未发现泄漏，但保温层破损",
    "氨气报警器过期了。车间水管泄漏",
    "电工房门没锁，无证人员可以随意进出",
    "焊工已持证上岗；另外有一名学徒无证，未安排作业",
    "叉车司机未戴安全帽",
    "有限空间警示牌掉了",
    "有限空间作业，已检测已通风，有专人监护",
    "受限空间入口，通风机未通电",
    "粉尘车间地面有积水",
    "粉尘车间除尘器运行正常，未发现积尘",
    "仓库里粉尘较多。电焊时有火花溅到纸箱",
    "安全阀铅封完好，压力表在检定有效期内",
    "灭火器过期",
    "压力表表盘模糊看不清",
    "安全阀没有失效，只是外壳锈蚀",
    "配电箱门没关，有裸露电线",
    "3号车间消防通道被堆放的货物堵塞",
    "员工在仓库吸烟",
    "液氨车间的洗眼器没水了",
    "氨水桶放在通道上，地面有油污泄漏",
]


@pytest.mark.parametrize(("text", "grade"), [
    *((text, Grade.MAJOR) for text in MAJOR), *((text, Grade.GENERAL) for text in NEAR_MISSES)])
def test_a_grade_a_safety_manager_trusts(text: str, grade: Grade) -> None:
    assert CATALOG.suggest(text, CATALOG.find(text)).grade is grade


def test_defect_type_comes_with_a_reason() -> None:
    behaviour = CATALOG.suggest("操作工未戴安全帽", category("P07"))
    assert (behaviour.defect_type, behaviour.defect_reason) == (DefectType.BEHAVIOUR,
                                                               "描述提到「未戴」")
    usual = CATALOG.suggest("交接班记录缺页", category("D09"))
    assert usual.defect_type is DefectType.MANAGEMENT
    thing = CATALOG.suggest("皮带防护罩缺失", category("M03"))
    assert thing.defect_type is DefectType.THING


@pytest.mark.parametrize(("extra", "named"), [
    ('[[major_rules]]\nwhen = [["氨"]]\nbasis = "x"\n', "major_rules[5]: when must list at least"),
    ('[[categories]]\ncode = "H01"\nname = "又一类"\nkeywords = ["a"]\ndeadline_days = 1\n',
     "categories[9] (H01): code used twice"),
    ('[[categories]]\ncode = "X1"\nname = "类"\nkeywords = []\ndeadline_days = 1\n',
     "categories[9] (X1): keywords must be"),
    ('[[categories]]\ncode = "X1"\nname = "类"\nkeywords = ["a"]\ndeadline_days = 0\n',
     "categories[9] (X1): deadline_days must be"),
    ('[[categories]]\ncode = "X1"\nname = "类"\nkeywords = ["a"]\ndeadline_days = 1\n'
     'colour = "red"\n', "categories[9] (X1): unknown key 'colour'"),
])
def test_a_bad_library_is_refused_with_the_entry_named(tmp_path: Path, extra: str,
                                                       named: str) -> None:
    bad = tmp_path / "categories.toml"
    text = LIBRARY.read_text(encoding="utf-8")
    head, _, words = text.rpartition("\n[defect_words]")
    bad.write_text(f"{head}\n{extra}\n[defect_words]{words}", encoding="utf-8")
    with pytest.raises(CatalogError, match=re.escape(named)):
        load_catalog(bad)


def test_start_up_stops_on_a_bad_library_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "categories.toml"
    bad.write_text('[[categories]]\ncode = "h1"\n', encoding="utf-8")
    done = cli("check-config", env={"SAFETYBOT_HAZARD_CATEGORIES_FILE": str(bad)})
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("safetybot: bad setting SAFETYBOT_HAZARD_CATEGORIES_FILE:")
    assert "categories[0] (h1): code must be like H01" in line
