"""Neutral outgoing messages: what handlers and jobs say, in no platform's words. Channels render
them; the outbox stores them as JSON payloads."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar

MESSAGE_BYTES = 2048   # the most a text or markdown may hold: WeCom refuses more (45002)


def fit(lines: Sequence[str], *, room: int = MESSAGE_BYTES, more: str = "……",
        newest_last: bool = False) -> str:
    """As many whole lines as `room` bytes hold, `more` standing for the rest: the first lines,
    or with `newest_last` the last ones (a record read up to now)."""
    text = "\n".join(lines)
    if len(text.encode()) <= room:
        return text
    left = room - len(more.encode())
    kept: list[str] = []
    for line in reversed(lines) if newest_last else lines:
        left -= len(line.encode()) + 1
        if left < 0:
            break
        kept.append(line)
    return "\n".join([more, *reversed(kept)] if newest_last else [*kept, more])


@dataclass(frozen=True)
class Text:
    type: ClassVar[str] = "text"
    content: str


@dataclass(frozen=True)
class Markdown:
    type: ClassVar[str] = "markdown"
    content: str


@dataclass(frozen=True)
class Image:
    type: ClassVar[str] = "image"
    media: str                            # content hash in the media store


@dataclass(frozen=True)
class File:
    """A document (a report's ledger); the name is what the person sees and saves it as."""

    type: ClassVar[str] = "file"
    media: str                            # content hash in the media store
    filename: str


@dataclass(frozen=True)
class Button:
    text: str
    key: str
    style: int = 1                        # 1 primary … 4; channels map it to their own


@dataclass(frozen=True)
class Selection:
    """A drop-down above a card's buttons; the chosen option id comes back with the click."""

    key: str
    title: str
    options: tuple[tuple[str, str], ...]  # (id, text), at most 10
    selected: str = ""


@dataclass(frozen=True)
class Card:
    """An interactive card; `task_id` is single-use on WeCom, so it names the step and attempt."""

    type: ClassVar[str] = "card"
    task_id: str
    title: str
    description: str = ""                 # a short line under the title
    fields: tuple[tuple[str, str], ...] = ()
    buttons: tuple[Button, ...] = ()
    body: str = ""                        # a longer text under the fields (≤ 160 characters)
    selection: Selection | None = None


@dataclass(frozen=True)
class CardUpdate:
    """Grey out a card's buttons with a note, for everyone who received it, or only for
    `users` (an emergency card goes to a thousand people; one person's 收到 is theirs alone)."""

    type: ClassVar[str] = "card_update"
    response_code: str
    replace_text: str
    users: tuple[str, ...] = ()


@dataclass(frozen=True)
class GroupCreate:
    type: ClassVar[str] = "group_create"
    chat_id: str
    name: str
    owner: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class GroupUpdate:
    """People to add to and remove from a group chat the service created, so that it keeps up
    with the roster; `owner` hands the chat over when its owner is among those removed ("" keeps
    it). Queued to the chat (`to_chat`)."""

    type: ClassVar[str] = "group_update"
    chat_id: str
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    owner: str = ""


Outgoing = Text | Markdown | Image | File | Card | CardUpdate | GroupCreate | GroupUpdate
_OUTGOING: dict[str, type[Outgoing]] = {
    cls.type: cls
    for cls in (Text, Markdown, Image, File, Card, CardUpdate, GroupCreate, GroupUpdate)
}
RATE_LIMITED = frozenset({Text.type, Markdown.type, Image.type, File.type, Card.type})
CHAT_PREFIX = "chat:"


def outgoing_to_payload(message: Outgoing) -> dict[str, Any]:
    return {"type": message.type, **_plain(message)}


def _plain(value: Any) -> Any:
    """Dataclasses as dicts and tuples as lists, for JSON; like `dataclasses.asdict` without
    its deep copies (a tick renders hundreds of messages)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    return value


def outgoing_from_payload(payload: dict[str, Any]) -> Outgoing:
    values = {k: v for k, v in payload.items() if k != "type"}
    cls = _OUTGOING[payload["type"]]
    if cls is Card:
        values["fields"] = tuple(tuple(pair) for pair in values.get("fields", ()))
        values["buttons"] = tuple(Button(**b) for b in values.get("buttons", ()))
        if values.get("selection"):
            pick = values["selection"]
            values["selection"] = Selection(**{**pick, "options": tuple(
                tuple(option) for option in pick["options"])})
    if cls is GroupCreate:
        values["members"] = tuple(values["members"])
    if cls is GroupUpdate:
        values["add"] = tuple(values.get("add", ()))
        values["remove"] = tuple(values.get("remove", ()))
    if cls is CardUpdate:
        values["users"] = tuple(values.get("users", ()))
    return cls(**values)


class Priority(IntEnum):
    """Emergency messages go ahead of every routine one."""

    ROUTINE = 0
    URGENT = 50
    EMERGENCY = 100
