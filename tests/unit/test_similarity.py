"""When a report describes a hazard that came back: real phrasings of the same hazard told
again, and of different hazards of the same area and category, which must stay apart."""

import pytest

from models.similarity import ALIKE, likeness

AGAIN = [
    ("配电箱门没关 有裸露电线", "配电箱门又没关，里面电线裸露"),
    ("配电箱门没关 有裸露电线", "配电箱柜门敞开，电线外露"),
    ("消防通道被货物堵塞", "消防通道又被堆放的纸箱堵住了"),
    ("灭火器压力不足，指针在红区", "灭火器压力表指针在红区"),
    ("员工未戴安全帽进入车间", "有人没戴安全帽就进车间"),
    ("叉车超速行驶", "叉车在车间内超速"),
    ("氨罐区法兰处有轻微泄漏", "液氨罐法兰又漏了"),
    ("应急灯不亮", "应急照明灯不亮了"),
    ("安全出口指示灯损坏", "安全出口指示灯坏了"),
    ("地面有油污，容易滑倒", "车间地面油污未清理"),
    ("砂轮机防护罩缺失", "砂轮机的防护罩又被拆了"),
    ("洗眼器没有水", "洗眼器不出水"),
]
DIFFERENT = [
    ("配电箱门没关 有裸露电线", "插座烧焦发黑"),
    ("消防通道被货物堵塞", "灭火器过期"),
    ("灭火器压力不足", "消防栓水带缺失"),
    ("员工未戴安全帽", "员工在车间吸烟"),
    ("叉车超速行驶", "叉车喇叭不响"),
    ("氨罐区法兰泄漏", "罐区围堰有裂缝"),
    ("应急灯不亮", "疏散指示牌被遮挡"),
    ("地面有油污", "楼梯扶手松动"),
    ("配电箱门没关", "配电房门口堆放杂物"),
    ("临时用电线路拖地", "电机接地线断开"),
    ("砂轮机防护罩缺失", "冲床光电保护失灵"),
    ("洗眼器没有水", "防毒面具过期"),
]


@pytest.mark.parametrize(("first", "again"), AGAIN)
def test_the_same_hazard_told_again_is_alike(first: str, again: str) -> None:
    assert likeness(first, again) >= ALIKE


@pytest.mark.parametrize(("one", "other"), DIFFERENT)
def test_different_hazards_of_one_kind_stay_apart(one: str, other: str) -> None:
    assert likeness(one, other) < ALIKE


def test_likeness_is_symmetric_and_whole_for_the_same_words() -> None:
    assert likeness("应急灯不亮", "应急灯不亮。") == 1.0
    assert likeness("叉车超速", "超速叉车") == likeness("超速叉车", "叉车超速")
    assert likeness("", "应急灯不亮") == 0.0
