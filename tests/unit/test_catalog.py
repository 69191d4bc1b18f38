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
