"""How the module reads what people type: the words after a command, people by name, days."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date

from handlers.router import Context, Predicate
from models.inbound import InboundKind
from models.org import Role, User, members_named
from models.outgoing import Text

SEPARATORS = re.compile(r"[\s,，、;；]+")
DAY = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$")


def words_after(text: str, command: str) -> list[str]:
    return [w for w in SEPARATORS.split(text.strip()[len(command):]) if w]


def starts_with(*commands: str) -> re.Pattern[str]:
    """`登记证书 张三`: one of `commands`, then the rest (or nothing)."""
    return re.compile(rf"^({'|'.join(commands)})(\s|$)")


def typed(pattern: re.Pattern[str]) -> Predicate:
    """A text message that starts with the pattern's command."""
    return lambda e: e.kind is InboundKind.TEXT and pattern.match(e.text.strip()) is not None


def after(ctx: Context, pattern: re.Pattern[str]) -> list[str]:
    """The words after the command the event starts with (see `typed`)."""
    text = ctx.event.text.strip()
    found = pattern.match(text)
    assert found is not None
    return words_after(text, found.group(1))


def parse_day(text: str) -> date | None:
    """2024-03-01, 2024/3/1, 2024.3.1 or 2024年3月1日."""
    found = DAY.match(text.strip())
    if found is None:
        return None
    try:
        return date(*(int(g) for g in found.groups()))
    except ValueError:
        return None


async def people_named(names: Sequence[str]) -> tuple[list[User], list[str]]:
    """The active people named (by name or roster id), in the order named, and the names that
    are nobody's. A name given twice counts once."""
    found = await members_named(names)
    people: list[User] = []
    unknown: list[str] = []
    for name in dict.fromkeys(names):
        person = found.get(name)
        if person is None:
            unknown.append(name)
        elif person not in people:
            people.append(person)
    return people, unknown


async def person_named(ctx: Context, name: str) -> User | None:
    """The active person `name` names; None, and the sender told, when nobody is."""
    people, _ = await people_named([name])
    if not people:
        await ctx.reply(Text(f"名册中没有“{name}”。"))
        return None
    return people[0]


async def managers_only(ctx: Context, action: str) -> bool:
    """Safety managers' commands: anyone else is told so (False)."""
    if ctx.me.has_role(Role.SAFETY_MANAGER):
        return True
    await ctx.reply(Text(f"{action}由安全管理员操作。"))
    return False
