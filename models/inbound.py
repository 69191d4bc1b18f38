"""The neutral inbound event: what a channel makes of a platform's callback, and what the
handlers see. Text is cleaned on arrival (models/markup.py), whatever the platform."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from models.markup import clean_text


class InboundKind(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    VOICE = "voice"
    LOCATION = "location"
    ENTER = "enter"          # the user opened the app's chat
    MENU = "menu"            # an app menu click
    CARD_ACTION = "card_action"
    SCAN = "scan"            # a QR code scanned with the platform's scanner (`text` = its content)
    EXPIRED = "expired"      # the person left a question unanswered (from the scheduler)
    FOLLOW_UP = "follow_up"  # a handler's next step, queued with its decision (`event_key`)
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float
    label: str = ""


@dataclass(frozen=True)
class Inbound:
    """One thing a person did in chat, the same for every platform."""

    platform: str
    user_id: str
    kind: InboundKind
    dedup_key: str
    sent_at: int = 0                      # the platform's CreateTime, epoch seconds
    text: str = ""
    media_id: str = ""                    # the platform's id; expires (WeCom: 3 days)
    media: str = ""                       # our content hash once downloaded
    media_lost: bool = False              # the platform could not give us the file
    location: Location | None = None
    event_key: str = ""                   # menu key or card button key
    task_id: str = ""
    response_code: str = ""               # single-use code to update the clicked card
    selected: dict[str, list[str]] = field(default_factory=dict)
    raw_type: str = ""                    # the platform's own type name, for logs

    def __post_init__(self) -> None:
        # Whatever a platform or a page sends: PostgreSQL refuses NUL and lone surrogates.
        for name in ("text", "event_key", "task_id", "response_code", "media_id"):
            object.__setattr__(self, name, clean_text(getattr(self, name)))

    def to_payload(self) -> dict[str, Any]:
        # A shallow copy rather than dataclasses.asdict (a deep copy): this runs on every
        # callback, and the location is the only nested dataclass.
        payload = dict(vars(self))
        if self.location is not None:
            payload["location"] = dataclasses.asdict(self.location)
        return payload

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Inbound:
        values = dict(data)
        values["kind"] = InboundKind(values["kind"])
        if values.get("location"):
            values["location"] = Location(**values["location"])
        return cls(**values)
