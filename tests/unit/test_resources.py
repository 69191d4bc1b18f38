"""The resource ledger without a database: reading the file, reading a keeper's 点检, and which
resources an activation's broadcast lists (usable, nearest by map point)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from bot.resources import LedgerError, Reading, parse_ledger
from handlers.emergency.resources import Confirmation, parse_confirmation
from models.org import Area
from models.resources import Resource, Result, nearest

TODAY = date(2026, 12, 7)
KIND = '[[kinds]]\nname = "空气呼吸器"\ninterval_days = 30\n' \
       'reading = { name = "气瓶压力", unit = "MPa", min = 25 }\n'


def entry(**keys: Any) -> str:
    """One [[resources]] table: a valid one, with `keys` changed (None leaves a key out)."""
    values: dict[str, Any] = {"code": '"R-A3-01"', "kind": '"空气呼吸器"',
                              "name": '"正压式空气呼吸器"', "quantity": "4", "unit": '"套"',
                              "area": '"A3"', "keeper": '"lihua"'} | keys
    return "[[resources]]\n" + "".join(f"{k} = {v}\n" for k, v in values.items()
                                       if v is not None)


def test_a_resource_takes_its_kind_s_interval_and_reading_unless_it_gives_its_own() -> None:
    [breathing, other] = parse_ledger(KIND + entry() + entry(
        code='"R-T1-03"', interval_days="14", location="[32.25, 118.78]",
        reading='{ name = "气瓶压力", unit = "MPa", min = 28, max = 30 }',
        expires_on="2027-03-31", inspected_on="2026-11-25"), TODAY)
    assert (breathing.interval_days, breathing.reading) == (30, Reading("气瓶压力", "MPa", 25.0,
                                                                        None))
    assert (other.interval_days, other.reading, other.location) == (
        14, Reading("气瓶压力", "MPa", 28.0, 30.0), (32.25, 118.78))
    assert (other.expires_on, other.inspected_on) == (date(2027, 3, 31), date(2026, 11, 25))


def test_every_bad_entry_is_named_with_its_code_and_reason() -> None:
    text = KIND + entry(code='"R-A3-01"', quantity='"四"') + entry(code='"r-a3-02"') \
        + entry(code='"R-A3-03"', expires_on='"明年"', phone='"138 0000"') \
        + entry(code='"R-A3-04"', inspected_on="2026-12-08") \
        + entry(code='"R-A3-05"', reading='{ name = "压力", unit = "MPa" }') \
        + entry(code='"R-A3-06"', unit=None) + entry(code='"R-A3-01"') \
        + entry(code='"R-A3-07"', colour='"红"')

    with pytest.raises(LedgerError) as refused:
        parse_ledger(text, TODAY)

    assert refused.value.problems == (
        'resources[0] (R-A3-01): quantity must be a number above 0 (quantity = 4), not "四"',
        'resources[1] (r-a3-02): code "r-a3-02" must be capital letters, digits and - '
        "(R-A3-01), at most 32",
        'resources[2] (R-A3-03): phone "138 0000" is not a phone number (digits and -)',
        "resources[3] (R-A3-04): inspected_on 2026-12-08 is in the future",
        "resources[4] (R-A3-05): reading: needs min or max",
        'resources[5] (R-A3-06): missing required key "unit"',
        'resources[7] (R-A3-07): unknown key "colour"; allowed: code, kind, name, quantity, '
        "unit, area, place, location, keeper, phone, interval_days, inspected_on, expires_on, "
        "reading",
        'resources[6] (R-A3-01): code "R-A3-01" is already used by resources[0]',
    )


def test_an_empty_ledger_is_refused() -> None:
    with pytest.raises(LedgerError, match=r"^the ledger lists no resources"):
        parse_ledger(KIND, TODAY)


@pytest.mark.parametrize("said, read", [
    ("R-A3-01 正常", Confirmation("R-A3-01", Result.OK)),
    ("r-a3-01 异常 压力不足", Confirmation("R-A3-01", Result.FAILED, note="压力不足")),
    ("R-A5-02 28MPa", Confirmation("R-A5-02", reading=28.0, unit="MPa")),
    ("R-A5-02 28.5 mpa 异常 面罩破损", Confirmation("R-A5-02", Result.FAILED, 28.5, "mpa",
                                                 "面罩破损")),
    ("R-A5-02", Confirmation("R-A5-02")),
    ("", Confirmation("")),
])
def test_a_keeper_s_confirmation_is_read(said: str, read: Confirmation) -> None:
    assert parse_confirmation(said) == read


@pytest.mark.parametrize("said, problem", [
    ("R-A5-02 二十八", "没有看懂“二十八”"),
    ("R-A5-02 28MPa 还行", "读数后只能跟“正常”或“异常 情况说明”，没有看懂“还行”"),
])
def test_what_cannot_be_read_is_said(said: str, problem: str) -> None:
    assert problem in parse_confirmation(said).problem


AREAS = [Area(code="A3", latitude=32.2536, longitude=118.7832),
         Area(code="T1", latitude=32.2548, longitude=118.7851),
         Area(code="W1", latitude=32.2522, longitude=118.7846),
         Area(code="X9")]


def resource(code: str, area: str | None, **more: Any) -> Resource:
    return Resource(**{"code": code, "kind": "灭火器", "area_id": area, "active": True,
                       "added_on": date(2026, 11, 1), "interval_days": 30, "result": "", **more})


def test_nearest_by_map_point_own_point_first_then_the_area_s() -> None:
    rows = [resource("R-W1-01", "W1"), resource("R-T1-01", "T1"), resource("R-X9-01", "X9"),
            resource("R-HQ-01", None),
            # In 罐区 but standing right beside 3号车间.
            resource("R-T1-02", "T1", latitude=32.2537, longitude=118.7833),
            resource("R-A3-01", "A3")]
    order = [r.code for r in nearest(rows, AREAS[0], AREAS)]
    # 仓库 is nearer to 3号车间 than 罐区 (the roster's locations, in metres on the ground).
    assert order == ["R-A3-01", "R-T1-02", "R-W1-01", "R-T1-01", "R-HQ-01", "R-X9-01"]
    # Without a map point of its own, an area's resources are still nearest to it.
    assert nearest(rows, AREAS[3], AREAS)[0].code == "R-X9-01"


def test_usable_means_neither_expired_nor_failed_and_overdue_is_only_marked() -> None:
    expired = resource("R-1", "A3", expires_on=date(2026, 12, 6))
    failed = resource("R-2", "A3", result=Result.FAILED.value)
    overdue = resource("R-3", "A3", inspected_on=date(2026, 10, 1))
    last_day = resource("R-4", "A3", expires_on=TODAY, inspected_on=date(2026, 12, 1))
    assert [r.usable(TODAY) for r in (expired, failed, overdue, last_day)] == [
        False, False, True, True]
    assert overdue.overdue(TODAY) and overdue.due_on == date(2026, 10, 31)
    assert not last_day.overdue(TODAY)
