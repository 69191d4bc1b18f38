"""Platform channels: one module per platform (callback endpoint, API client, card rendering).

The dispatcher and the inbox worker speak to every channel through `Channel`; nothing outside
this package knows a platform's JSON or error codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from models.outgoing import Outgoing


class Verdict(StrEnum):
    SENT = "sent"
    INVALID = "invalid"   # the platform refuses this recipient for good
    RETRY = "retry"       # try again after `delay` seconds
    FAILED = "failed"     # a permanent error; do not try again


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    detail: str = ""      # the platform's error code and message, for the record
    delay: float = 0.0
    uncertain: bool = False  # the platform may have carried out the call (a timeout)

    @classmethod
    def sent(cls) -> Outcome:
        return cls(Verdict.SENT)


@dataclass(frozen=True)
class Delivery:
    """What happened to one attempt: an outcome per recipient, and what the platform returned."""

    outcomes: dict[str, Outcome]
    result: dict[str, Any]


class MediaGone(Exception):
    """The platform no longer has the file (expired or unknown media id)."""


class PlatformUnavailable(Exception):
    """The platform is busy or down for now: what was asked can be asked again later."""


class Channel(Protocol):
    platform: str

    async def fetch_media(self, media_id: str) -> bytes:
        """Download an inbound file; raises MediaGone when it cannot ever succeed."""
        ...

    async def deliver(self, key: str, message: Outgoing, recipients: Sequence[str],
                      repeat_after: float = 0.0, batch: str = "") -> Delivery:
        """Send to these recipients; never raises for platform errors, reports them instead.

        `repeat_after`: when positive, an attempt this many seconds ago may have reached them,
        so ask the platform to drop a copy. `batch`: set when the message already reached
        others (these recipients waited for their rate limit); the same for every attempt at
        these recipients.
        """
        ...
