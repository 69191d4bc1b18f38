"""Neutral outgoing messages: what handlers and jobs say, in no platform's words. Channels render
them; the outbox stores them as JSON payloads."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar

from models.markup import literal, render_markdown


@dataclass(frozen=True)
class Limits:
    """What one platform holds: the size of a message and of a card, and how fast and to how
    many it may be sent. Each channel declares its own (`bot/channels/`); renderers cut what does
    not fit, keeping the first buttons, rows and options and whole lines of text, so the platform
    never refuses a message for its size. The dispatcher reads the rate, the batch and the
    duplicate rule of the recipient's channel; handlers read the content limits of the platform
    they answer on, or `COMMON` when they do not know it."""

    message_bytes: int              # a text or markdown message, in UTF-8 bytes
    card_buttons: int               # buttons on one card
    card_rows: int                  # field rows (key: value) on one card
    card_options: int               # options in a card's drop-down
    option_chars: int               # characters of one drop-down option's text
    card_body_chars: int            # characters of the text under a card's fields
    per_person_per_minute: int | None = None   # messages one person may get a minute; None: any
    recipients_per_call: int | None = None     # people one send may name; None: any number
    # When a send may have gone through (a timeout, a crash), how far back the platform can be
    # asked to drop an identical repeat, in seconds (WeCom's enable_duplicate_check); None when
    # it cannot (a repeat is then harmless, as in the web chat, or may be seen twice).
    duplicate_check_seconds: int | None = None

    def within(self, other: Limits) -> bool:
        """True when whatever fits these limits fits `other` too (None: no limit)."""
        def fits(mine: int | None, theirs: int | None) -> bool:
            return theirs is None or (mine is not None and mine <= theirs)

        sizes = ("message_bytes", "card_buttons", "card_rows", "card_options", "option_chars",
                 "card_body_chars", "per_person_per_minute", "recipients_per_call")
        return all(fits(getattr(self, name), getattr(other, name)) for name in sizes)


# What fits every platform the service can speak: the strictest of each channel's limits
# (tests/integration/test_channels.py checks it against every registered channel). A handler or
# a job that does not know the recipient's platform writes within these: WeCom's sizes,
# DingTalk's 20 people a call and 20 messages a minute.
COMMON = Limits(message_bytes=2048, card_buttons=6, card_rows=6, card_options=10,
                option_chars=16, card_body_chars=160, per_person_per_minute=20,
                recipients_per_call=20)


def limits_of(by_platform: Mapping[str, Limits], platform: str) -> Limits:
    """The limits of the platform a message goes to; `COMMON` for one not connected here."""
    return by_platform.get(platform, COMMON)


def fit_text(text: str, room: int) -> str:
    """A text as it is when it fits `room` bytes, else its first whole lines (handlers fit their
    own; a channel uses this so a slip is cut, never refused by the platform)."""
    return text if len(text.encode()) <= room else fit(text.splitlines(), room=room)


def fit(lines: Sequence[str], *, room: int = COMMON.message_bytes, more: str = "……",
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
    about: str = ""                       # what it belongs to (a ticket's number), for the
                                          # log and the note sent if the store lost it


@dataclass(frozen=True)
class File:
    """A document (a report's ledger); the name is what the person sees and saves it as."""

    type: ClassVar[str] = "file"
    media: str                            # content hash in the media store
    filename: str
    about: str = ""                       # as Image's


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
    options: tuple[tuple[str, str], ...]  # (id, text); a channel shows its first `card_options`
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

    def within(self, limits: Limits) -> Card:
        """What a platform's card holds: the first rows, buttons and options, the body and the
        options' texts cut; a chosen option that was cut is no longer chosen, and a drop-down
        without options is left off. Every channel renders a card through this, so a click is
        checked against what people saw, the same on every platform."""
        pick = self.selection if self.selection and self.selection.options else None
        if pick is not None:
            options = tuple((i, text[:limits.option_chars])
                            for i, text in pick.options[:limits.card_options])
            pick = Selection(pick.key, pick.title, options,
                             pick.selected if any(i == pick.selected for i, _ in options) else "")
        return dataclasses.replace(
            self, fields=self.fields[:limits.card_rows],
            buttons=self.buttons[:limits.card_buttons],
            body=self.body[:limits.card_body_chars], selection=pick)

    def as_markdown(self, room: int) -> str:
        """The card without buttons, as markdown within `room` bytes: its fields are plain text,
        so all of it is escaped (a description in its body must not become a link); its line
        breaks stay."""
        lines = [f"**{literal(self.title)}**"]
        lines += [literal(line) for text in (self.description, self.body)
                  for line in text.splitlines()]
        lines += [f"> {literal(k)}：{literal(v)}" for k, v in self.fields]
        return render_markdown("\n".join(lines), room=room)


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
