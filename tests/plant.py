"""The demo plant for end-to-end tests: the demo roster in the database, the WeCom simulator
playing everyone in it, the real service in between, and people who read their chat in order."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bot.clock import ManualClock
from bot.roster import load_org, parse_roster
from simulator.photos import photo as sample_photo
from simulator.wecom import Delivered, WeComSimulator
from tests.harness import (
    AES_KEY,
    AGENT_ID,
    CORP_ID,
    ROOT,
    SECRET,
    TOKEN,
    Service,
    service_settings,
)

DEMO_ORG = ROOT / "config" / "demo-org.toml"
_photo_numbers = itertools.count(1)


def photo() -> bytes:
    """A photo no one has sent before in this run."""
    return sample_photo(next(_photo_numbers))


def text_of(message: Delivered) -> str:
    body = message.body
    if message.msgtype == "text":
        return str(body["text"]["content"])
    if message.msgtype == "markdown":
        return str(body["markdown"]["content"])
    if message.msgtype == "template_card":
        card = body["template_card"]
        fields = " ".join(f"{f['keyname']}:{f['value']}"
                          for f in card.get("horizontal_content_list", []))
        return f"{card['main_title']['title']} {fields} {card.get('sub_title_text', '')}"
    return f"[{message.msgtype}]"


class Person:
    """One person's phone: what they send, and what they have read so far."""

    def __init__(self, sim: WeComSimulator, user_id: str) -> None:
        self.sim = sim
        self.id = user_id
        self.read = 0

    async def says(self, text: str) -> None:
        assert (await self.sim.user(self.id).says(text)).status == 200

    async def sends_photo(self, data: bytes | None = None) -> None:
        result = await self.sim.user(self.id).sends_photo(data or photo(), "image/png")
        assert result.status == 200

    async def sends_location(self, lat: float, lng: float, label: str = "") -> None:
        assert (await self.sim.user(self.id).sends_location(lat, lng, label)).status == 200

    async def expect(self, *words: str, timeout: float = 10.0) -> Delivered:  # noqa: ASYNC109
        """The next unread message that contains every word; skips nothing silently: the
        messages passed over stay readable through `unread`."""
        def found() -> Delivered | None:
            for i, message in enumerate(self.sim.messages_for(self.id)[self.read:], self.read):
                if all(w in text_of(message) for w in words):
                    self.read = i + 1
                    return message
            return None

        await self.sim.until(lambda: found() is not None, timeout,
                             lambda: f"{self.id} got no message with {words}; unread: "
                                     f"{[text_of(m) for m in self.unread()]}")
        message = self.sim.messages_for(self.id)[self.read - 1]
        return message

    def unread(self) -> list[Delivered]:
        return self.sim.messages_for(self.id)[self.read:]

    async def clicks(self, card: Delivered, label: str,
                     selected: dict[str, list[str]] | None = None) -> str:
        """Press the button labelled `label`; returns the response code the click carried."""
        tc = card.body["template_card"]
        [button] = [b for b in tc["button_list"] if b["text"] == label]
        code = f"code-{self.id}-{next(_photo_numbers)}"
        result = await self.sim.user(self.id).clicks(tc["task_id"], button["key"], code,
                                                     selected)
        assert result.status == 200
        return code


def card_field(card: Delivered, name: str) -> str:
    for item in card.body["template_card"].get("horizontal_content_list", []):
        if item["keyname"] == name:
            return str(item["value"])
    raise KeyError(name)


@asynccontextmanager
async def plant(database_url: str, media_dir: Path, clock: ManualClock | None = None,
                **overrides: Any) -> AsyncIterator[tuple[WeComSimulator, Service]]:
    """The demo org loaded, the simulator and the service running; the database must be empty.
    `clock`: the service's "now" (by default a running `ManualClock`; it is `service.clock`)."""
    clock = clock or ManualClock()
    await load_org(DEMO_ORG, clock())
    users = [u.id for u in parse_roster(DEMO_ORG.read_text(encoding="utf-8")).users]
    sim = WeComSimulator(CORP_ID, AGENT_ID, SECRET, TOKEN, AES_KEY, users=users,
                         per_member_per_minute=10_000)
    await sim.start()
    service = Service(service_settings(database_url, sim.base_url, media_dir,
                                       wecom_per_member_per_minute=10_000, **overrides), clock)
    await service.start()
    sim.callback_url = f"{service.url}/wecom/callback"
    try:
        yield sim, service
    finally:
        await service.stop()
        await sim.stop()
