"""The category library and how a worker's words map to areas, categories and grades.

The library lives in `config/categories.toml` so a plant can edit it without code. Suggestions
always carry a reason the reporter can read: the bot proposes, people decide. 重大 is proposed
only when a rule with at least two independent conditions matches within one clause
(regulations.md §5.2), never from one word, nor from words of two findings.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from models.org import Area


class Grade(StrEnum):
    GENERAL = "一般"
    MAJOR = "重大"


class DefectType(StrEnum):
    THING = "物的状态"
    BEHAVIOUR = "人的行为"
    MANAGEMENT = "管理缺陷"


class CatalogError(Exception):
    """The library file is wrong; the message names the entry."""


@dataclass(frozen=True)
class Category:
    code: str
    name: str
    keywords: tuple[str, ...]
    deadline_days: int
    major_deadline_days: int = 30
    owner: str | None = None
    reviewer: str | None = None
    defect_type: DefectType = DefectType.THING

    @property
    def label(self) -> str:
        """As an inspector looks for it, name and code: 用电类 H01."""
        return f"{self.name} {self.code}"


# Where one finding ends and the next begins: a full stop, comma, semicolon, a question or a new
# line. Not 、, which lists things a finding is about (安全阀、压力表失效).
CLAUSES = re.compile(r"[，,。.;；!！?？\n]+")
# Words that deny what follows them in the clause: 无泄漏, 未发现泄漏, 没有积尘.
DENIALS = ("无", "未发现", "没发现", "没有", "未见", "不存在")


def _affirmed(clause: str, word: str) -> bool:
    """`word` is in the clause at least once where the words just before do not deny it."""
    start = clause.find(word)
    while start >= 0:
        if not clause[:start].endswith(DENIALS):
            return True
        start = clause.find(word, start + 1)
    return False


@dataclass(frozen=True)
class MajorRule:
    when: tuple[tuple[str, ...], ...]
    basis: str

    def matches(self, text: str) -> tuple[str, ...] | None:
        """The word that matched each condition, all in one clause (an expired extinguisher and
        a pressure gauge in the red are two findings, not a failed safety fitting), none of them
        denied (无泄漏, 未发现泄漏); None when no clause meets every condition."""
        for clause in CLAUSES.split(text):
            hits = [next((w for w in words if _affirmed(clause, w)), None) for words in self.when]
            if all(hits):
                return tuple(h for h in hits if h)
        return None


@dataclass(frozen=True)
class Suggestion:
    grade: Grade
    grade_reason: str
    defect_type: DefectType
    defect_reason: str


@dataclass(frozen=True)
class Catalog:
    categories: tuple[Category, ...]
    major_rules: tuple[MajorRule, ...]
    behaviour_words: tuple[str, ...]
    management_words: tuple[str, ...]

    def get(self, code: str) -> Category | None:
        return next((c for c in self.categories if c.code == code), None)

    def name_of(self, code: str) -> str:
        """The category's name for people; the code itself once it left the library."""
        found = self.get(code)
        return found.name if found else (code or "未填类别")

    def find(self, text: str) -> Category | None:
        """The category whose keywords the text mentions most (the first one on a tie)."""
        scored = [(sum(k in text for k in c.keywords), -i, c)
                  for i, c in enumerate(self.categories)]
        score, _, best = max(scored, key=lambda s: (s[0], s[1]))
        return best if score else None

    def answer(self, text: str) -> Category | None:
        """A reply to "which category?": its number in the list, code, name or a keyword."""
        text = text.strip()
        if text.isdigit() and 1 <= int(text) <= len(self.categories):
            return self.categories[int(text) - 1]
        for c in self.categories:
            if text.upper() == c.code or text in (c.name, c.name.removesuffix("类")):
                return c
        return self.find(text)

    def suggest(self, text: str, category: Category | None) -> Suggestion:
        for rule in self.major_rules:
            hits = rule.matches(text)
            if hits:
                words = "、".join(f"「{h}」" for h in hits)
                return self._with_defect(text, category, Grade.MAJOR,
                                         f"描述同时提到{words}，对应{rule.basis}")
        return self._with_defect(text, category, Grade.GENERAL, "未命中重大隐患判定条件")

    def _with_defect(self, text: str, category: Category | None, grade: Grade,
                     reason: str) -> Suggestion:
        for kind, words in ((DefectType.BEHAVIOUR, self.behaviour_words),
                            (DefectType.MANAGEMENT, self.management_words)):
            hit = next((w for w in words if w in text), None)
            if hit:
                return Suggestion(grade, reason, kind, f"描述提到「{hit}」")
        if category is not None and category.defect_type is not DefectType.THING:
            return Suggestion(grade, reason, category.defect_type,
                              f"{category.name}隐患通常属于{category.defect_type}")
        return Suggestion(grade, reason, DefectType.THING, "设备、设施或环境的不安全状态")


def load_catalog(path: Path) -> Catalog:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CatalogError(f"{path}: file does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{path}: not valid TOML ({exc})") from None
    categories = tuple(_category(path, i, raw) for i, raw in
                       enumerate(_list(path, data, "categories")))
    if not categories:
        raise CatalogError(f"{path}: no [[categories]]")
    codes = [c.code for c in categories]
    for i, code in enumerate(codes):
        if code in codes[:i]:
            raise CatalogError(f"{path}: categories[{i}] ({code}): code used twice")
    rules = tuple(_rule(path, i, raw) for i, raw in enumerate(_list(path, data, "major_rules")))
    words = data.get("defect_words", {})
    return Catalog(categories, rules, _words(path, words, "behaviour"),
                   _words(path, words, "management"))


def _list(path: Path, data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise CatalogError(f"{path}: {key} must be an array of tables ([[{key}]])")
    return value


def _category(path: Path, i: int, raw: Any) -> Category:
    where = f"{path}: categories[{i}]"
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: must be a table")
    where += f" ({raw.get('code', '?')})"
    allowed = {"code", "name", "keywords", "deadline_days", "major_deadline_days", "owner",
               "reviewer", "defect_type"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise CatalogError(f"{where}: unknown key {unknown[0]!r}")
    code, name = raw.get("code"), raw.get("name")
    if not isinstance(code, str) or not re.fullmatch(r"[A-Z][A-Z0-9]{1,15}", code):
        raise CatalogError(f"{where}: code must be like H01 (capital letters and digits)")
    if not isinstance(name, str) or not name.strip():
        raise CatalogError(f"{where}: name must be a non-empty string")
    keywords = raw.get("keywords")
    if not isinstance(keywords, list) or not keywords or not all(
            isinstance(k, str) and k.strip() for k in keywords):
        raise CatalogError(f"{where}: keywords must be a non-empty list of words")
    days: dict[str, int] = {}
    for key, default in (("deadline_days", None), ("major_deadline_days", 30)):
        value = raw.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 3650:
            raise CatalogError(f"{where}: {key} must be a whole number of days (1–3650)")
        days[key] = value
    defect = raw.get("defect_type", DefectType.THING.value)
    if defect not in {d.value for d in DefectType}:
        raise CatalogError(f"{where}: defect_type must be 物的状态, 人的行为 or 管理缺陷")
    for key in ("owner", "reviewer"):
        if key in raw and (not isinstance(raw[key], str) or not raw[key].strip()):
            raise CatalogError(f"{where}: {key} must be a user id")
    return Category(code=code, name=name, keywords=tuple(keywords),
                    deadline_days=days["deadline_days"],
                    major_deadline_days=days["major_deadline_days"], owner=raw.get("owner"),
                    reviewer=raw.get("reviewer"), defect_type=DefectType(defect))


def _rule(path: Path, i: int, raw: Any) -> MajorRule:
    where = f"{path}: major_rules[{i}]"
    if not isinstance(raw, dict) or set(raw) != {"when", "basis"}:
        raise CatalogError(f"{where}: needs exactly the keys when and basis")
    when, basis = raw["when"], raw["basis"]
    if not isinstance(when, list) or len(when) < 2 or not all(
            isinstance(group, list) and group and all(isinstance(w, str) and w for w in group)
            for group in when):
        raise CatalogError(f"{where}: when must list at least two groups of words; "
                           "one word alone never makes a hazard 重大")
    if not isinstance(basis, str) or not basis.strip():
        raise CatalogError(f"{where}: basis must say which standard or rule applies")
    return MajorRule(tuple(tuple(group) for group in when), basis)


def _words(path: Path, table: Any, key: str) -> tuple[str, ...]:
    value = table.get(key, []) if isinstance(table, dict) else None
    if not isinstance(value, list) or not all(isinstance(w, str) and w for w in value):
        raise CatalogError(f"{path}: defect_words.{key} must be a list of words")
    return tuple(value)


# ---------------------------------------------------------------------------------------------
# Areas


NEAR_METRES = 300.0


def area_in_text(text: str, areas: Sequence[Area]) -> tuple[Area, str] | None:
    """The area a message names (longest name or alias wins), with the label found."""
    found = [(len(label), label, a) for a in areas for label in (a.name, *a.aliases)
             if label in text]
    if not found:
        return None
    _, label, area = max(found, key=lambda f: f[0])
    return area, label


def area_answer(text: str, areas: Sequence[Area], numbered: int) -> Area | None:
    """A reply to "which area?": its number in the list (of the first `numbered`, the ones the
    question can show), code, a label in it, or a close match."""
    text = text.strip()
    if text.isdigit() and 1 <= int(text) <= min(numbered, len(areas)):
        return areas[int(text) - 1]
    by_code = next((a for a in areas if a.code.upper() == text.upper()), None)
    if by_code:
        return by_code
    named = area_in_text(text, areas)
    if named:
        return named[0]
    labels = {label: a for a in areas for label in (a.name, *a.aliases)}
    close = difflib.get_close_matches(text, list(labels), n=1, cutoff=0.6)
    return labels[close[0]] if close else None


def area_near(latitude: float, longitude: float, label: str, areas: Sequence[Area]
              ) -> Area | None:
    """The nearest area within NEAR_METRES of a location message, else one its label names."""
    placed = [(_metres(latitude, longitude, a.latitude, a.longitude), a)
              for a in areas if a.latitude is not None and a.longitude is not None]
    if placed:
        distance, nearest = min(placed, key=lambda p: p[0])
        if distance <= NEAR_METRES:
            return nearest
    named = area_in_text(label, areas) if label else None
    return named[0] if named else None


def _metres(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    r = 6_371_000.0
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(h))
