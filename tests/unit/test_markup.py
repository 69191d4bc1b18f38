"""People's text inside markdown shows as typed: a reporter's `[点我](http://…)` is no link
where the writer's own markup is; long text is cut by whole lines within the room; text a
database cannot hold is cleaned on arrival. Through the service: e2e/test_markup_in_chat.py."""

from __future__ import annotations

from bot.channels.wecom import render
from models.inbound import Inbound, InboundKind
from models.markup import clean_text, literal, render_markdown
from models.outgoing import COMMON, Card
from tests.markup_samples import SHOWN, TYPED

# ---------------------------------------------------------------------------------------------
# The renderer


def test_marked_text_is_escaped_and_the_writers_markup_kept() -> None:
    colour = '<font color="info">好</font>'
    content = f"**描述**：{literal(TYPED)}\n> 记录：{literal(colour)}"
    assert render_markdown(content, room=COMMON.message_bytes) == (
        f"**描述**：{SHOWN}\n> 记录：＜font color=\"info\"＞好＜/font＞")


def test_people_cannot_start_a_line_or_end_the_writers_one() -> None:
    """A line break in typed text would let it begin a quote or a heading: it becomes a space.
    A trailing backslash cannot escape the markup after it."""
    typed = "第一行\n# 标题\r\n> 引用\u2028末尾\\"
    assert render_markdown(f"**{literal(typed)}**", room=None) == (
        "**第一行 ＃ 标题 ＞ 引用 末尾＼**")


def test_an_unpaired_marker_escapes_the_rest_and_stray_ones_are_dropped() -> None:
    assert render_markdown("**a**\ue000*b*", room=None) == "**a**＊b＊"
    assert render_markdown("**a**\ue001", room=None) == "**a**"
    assert render_markdown(literal(literal("*")), room=None) == "＊"


def test_escaping_that_lengthens_the_content_shortens_peoples_text_not_lines() -> None:
    """`fit` counted the marked text; a full-width form takes 3 bytes where `*` took one. The
    longest typed text gives way, with an ellipsis, and every line the writer kept stays."""
    lines = ["**HZ-20261201-0001 记录**", f"描述：{literal('*' * 900)}",
             *[f"> 第{n}次：{literal('[x]' * 20)}" for n in range(5)]]
    content = "\n".join(lines)
    assert len(content.encode()) <= COMMON.message_bytes
    shown = render_markdown(content, room=COMMON.message_bytes)
    assert len(shown.encode()) <= COMMON.message_bytes
    assert [line.split("：")[0] for line in shown.splitlines()] == [
        "**HZ-20261201-0001 记录**", "描述", *[f"> 第{n}次" for n in range(5)]]
    assert shown.splitlines()[1].endswith("＊…")
    assert shown.splitlines()[-1] == "> 第4次：" + "［x］" * 20


def test_a_card_without_buttons_is_markdown_with_every_field_escaped() -> None:
    card = Card(task_id="t-1", title="隐患 *HZ*", description=TYPED,
                fields=(("原因", "**紧急**"),), body=f"第一行\n{TYPED}")
    content = render(card, agent_id=1)["markdown"]["content"]
    assert content == (f"**隐患 ＊HZ＊**\n{SHOWN}\n第一行\n{SHOWN}\n> 原因：＊＊紧急＊＊")


def test_text_a_database_cannot_hold_is_cleaned_on_arrival() -> None:
    assert clean_text("a\x00b\ud800c\ue000d\ue001") == "a\ufffdb\ufffdc\ufffdd\ufffd"
    event = Inbound(platform="wecom", user_id="zhangsan", kind=InboundKind.TEXT,
                    dedup_key="k", text="配电箱\x00", event_key="\udfff")
    assert (event.text, event.event_key) == ("配电箱\ufffd", "\ufffd")
    assert Inbound.from_payload(event.to_payload()) == event
