"""The demo plant for end-to-end tests: the demo roster in the database, a platform's simulator
(WeCom or DingTalk) playing everyone in it, the real service in between, and people who read
their chat in order.

Tests read what people saw through one neutral view, so one story runs on every platform:
`Seen` is a message as a person saw it, `Phone` is everyone's chat on one platform (one adapter
per simulator), `Person` is one person reading theirs in order. What only one platform has stays
on its simulator, `phone.sim`.
"""

from __future__ import annotations

import itertools
import json
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Generic, TypeAlias, TypeVar

import aiohttp

from bot.channels import dingtalk as dingtalk_channel
from bot.channels import wecom as wecom_channel
from bot.channels.dingtalk_groups import DingTalkGroup
from bot.clock import ManualClock
from bot.media import MediaStore, open_store, opened
from bot.roster import load_org, parse_roster
from models.chats import GroupChat
from models.org import User
from models.outgoing import Limits
from simulator import dingtalk, wecom
from simulator.dingtalk import DingTalkSimulator
from simulator.photos import photo as sample_photo
from simulator.wecom import WeComSimulator
from tests.harness import (
    AES_KEY,
    AGENT_ID,
    CORP_ID,
    DINGTALK_CLIENT_ID,
    DINGTALK_ROBOT,
    DINGTALK_SECRET,
    ROOT,
    SECRET,
    TOKEN,
    Service,
    cli,
    service_settings,
    settled,
)

DEMO_ORG = ROOT / "config" / "demo-org.toml"
DEMO_LEDGER = ROOT / "config" / "resources.toml"
DEMO_TRAINING = ROOT / "config" / "demo-training.xlsx"
LEDGER_WRITTEN = date(2026, 12, 7)      # the day the demo ledger's dates read as written
DINGTALK_GROUP_TEMPLATE = "safetybot-group-test"     # the plans' scene groups (场景群)
PLATFORMS = ("wecom", "dingtalk")
Simulator: TypeAlias = WeComSimulator | DingTalkSimulator
# What a simulator recorded of one message to a person or a group chat.
Raw: TypeAlias = (wecom.Delivered | wecom.ChatMessage | dingtalk.Delivered
                  | dingtalk.ChatMessage)
# One delivery to the service as the simulator made it, to deliver again.
Sent: TypeAlias = wecom.CallbackResult | dingtalk.CallbackResult
S = TypeVar("S", WeComSimulator, DingTalkSimulator)
_photo_numbers = itertools.count(1)


def photo() -> bytes:
    """A photo no one has sent before in this run."""
    return sample_photo(next(_photo_numbers))


@dataclass(frozen=True)
class Seen:
    """One message as a person saw it, in no platform's words. `kind` is text, markdown, card,
    image or file; `text` is all of it that reads as text (a card's title, its fields as
    `名:值` and its note), which is what `Person.expect` looks for words in."""

    kind: str
    text: str
    raw: Raw
    title: str = ""
    description: str = ""
    fields: tuple[tuple[str, str], ...] = ()
    buttons: tuple[tuple[str, str], ...] = ()      # (text, key)
    note: str = ""                                  # the longer text under a card's fields
    task_id: str = ""                               # the card as the platform names it
    selection: str = ""                             # the drop-down's key, "" for none
    options: tuple[tuple[str, str], ...] = ()       # the drop-down's (id, text)

    def field(self, name: str) -> str:
        for key, value in self.fields:
            if key == name:
                return value
        raise KeyError(name)

    @property
    def labels(self) -> list[str]:
        return [text for text, _ in self.buttons]

    @property
    def msgtype(self) -> str:
        """The platform's own type (WeCom's msgtype, DingTalk's msgKey), for one platform's
        tests."""
        return self.raw.msgtype

    @property
    def body(self) -> dict[str, Any]:
        """The platform's own JSON, for one platform's tests."""
        return self.raw.body


def text_of(message: Seen) -> str:
    """What `Person.expect` reads (`message.text`), for the tests that say it this way."""
    return message.text


def _card(raw: Raw, title: str, fields: Sequence[tuple[str, str]], note: str,
          **rest: Any) -> Seen:
    shown = " ".join(f"{k}:{v}" for k, v in fields)
    return Seen("card", f"{title} {shown} {note}", raw, title=title, fields=tuple(fields),
                note=note, **rest)


def wecom_seen(raw: wecom.Delivered | wecom.ChatMessage) -> Seen:
    body = raw.body
    if raw.msgtype == "text":
        return Seen("text", str(body["text"]["content"]), raw)
    if raw.msgtype == "markdown":
        return Seen("markdown", str(body["markdown"]["content"]), raw)
    if raw.msgtype == "template_card":
        card = body["template_card"]
        pick = card.get("button_selection") or {}
        return _card(
            raw, card["main_title"]["title"],
            [(f["keyname"], f["value"]) for f in card.get("horizontal_content_list", [])],
            card.get("sub_title_text", ""), description=card["main_title"].get("desc", ""),
            buttons=tuple((b["text"], b["key"]) for b in card.get("button_list", [])),
            task_id=card["task_id"], selection=pick.get("question_key", ""),
            options=tuple((o["id"], o["text"]) for o in pick.get("option_list", [])))
    return Seen(raw.msgtype, f"[{raw.msgtype}]", raw)


DINGTALK_KINDS = {"sampleText": "text", "sampleMarkdown": "markdown", "sampleImageMsg": "image",
                  "sampleFile": "file"}


def dingtalk_seen(raw: dingtalk.Delivered | dingtalk.ChatMessage) -> Seen:
    body = raw.body
    if raw.msgtype == "sampleText":
        return Seen("text", str(body["content"]), raw)
    if raw.msgtype == "sampleMarkdown":
        return Seen("markdown", str(body["text"]), raw)
    if raw.msgtype == "card":
        # The template's variables, all strings; lists and the drop-down as JSON (§7.4).
        params = body["cardParamMap"]
        pick = json.loads(params["selection"]) if params.get("selection") else {}
        return _card(
            raw, params["title"], [(f["key"], f["value"]) for f in json.loads(params["fields"])],
            params.get("body", ""), description=params.get("description", ""),
            buttons=tuple((b["text"], b["key"]) for b in json.loads(params["buttons"])),
            task_id=body["outTrackId"], selection=pick.get("key", ""),
            options=tuple((o["id"], o["text"]) for o in pick.get("options", [])))
    kind = DINGTALK_KINDS.get(raw.msgtype, raw.msgtype)
    return Seen(kind, f"[{kind}]", raw)


@dataclass(frozen=True)
class CardChange:
    """A decision shown on a card: its buttons greyed with `text`, for everyone who got it, or
    only for `users` (one person's own answer)."""

    text: str
    users: tuple[str, ...] = ()


class Phone(ABC, Generic[S]):
    """Everyone's chat on one platform, in the tests' words; `sim` is the platform's simulator,
    for what only that platform has."""

    platform: str
    limits: Limits          # what the platform's messages and cards hold

    def __init__(self, sim: S) -> None:
        self.sim: S = sim

    @abstractmethod
    def messages_for(self, user: str) -> list[Seen]: ...

    @abstractmethod
    def group_messages(self, chat_id: str) -> list[Seen]: ...

    @abstractmethod
    def changes(self, card: Seen) -> list[CardChange]:
        """The decisions shown on `card` so far, in order."""

    @abstractmethod
    def picture(self, image: Seen) -> bytes:
        """What an image message shows: the upload its media id names."""

    @property
    def uploads(self) -> int:
        """Files uploaded to the platform so far (media/upload)."""
        return self.sim.calls.get("media/upload", 0)

    @abstractmethod
    async def says(self, user: str, text: str) -> Sent: ...

    @abstractmethod
    async def sends_photo(self, user: str, data: bytes) -> Sent: ...

    @abstractmethod
    async def sends_lost_photo(self, user: str) -> None:
        """A photo the platform no longer has when the service fetches it."""

    @abstractmethod
    async def uses_menu(self, user: str, key: str, word: str) -> None:
        """The app menu's `key` where the platform has one, else the `word` it stands for."""

    @abstractmethod
    async def clicks(self, user: str, card: Seen, key: str, selected: str = "") -> Sent:
        """The button whose key is `key` (any key: a forged one too), with the option id
        `selected` chosen in the card's drop-down."""

    @abstractmethod
    async def sends_again(self, user: str, sent: Sent) -> None:
        """The platform delivers `sent` once more, as it does when it retries."""

    @abstractmethod
    def fail_next_sends(self, times: int) -> None:
        """The next `times` sends of each kind are answered with a passing error (busy)."""

    @abstractmethod
    async def group_chats_ready(self) -> None:
        """The group chats of the plans loaded (`GroupChat` rows) exist on the platform."""

    def add_user(self, user: str) -> None:
        self.sim.add_user(user)

    def remove_user(self, user: str) -> None:
        """Someone who left the company; still in our roster."""
        self.sim.remove_user(user)

    async def until(self, condition: Callable[[], object], timeout: float = 10.0,  # noqa: ASYNC109
                    explain: Callable[[], str] = lambda: "condition not met") -> None:
        await self.sim.until(lambda: bool(condition()), timeout, explain)

    async def changed(self, card: Seen, users: tuple[str, ...] = ()) -> CardChange:
        """The first decision shown on `card` for `users` (for everyone: `()`), once shown."""
        def found() -> CardChange | None:
            return next((c for c in self.changes(card) if c.users == users), None)

        await self.until(found, explain=lambda: f"card {card.task_id} shows no decision for "
                                                f"{users or 'everyone'}: {self.changes(card)}")
        change = found()
        assert change is not None
        return change


class WeComPhone(Phone[WeComSimulator]):
    platform = "wecom"
    limits = wecom_channel.LIMITS

    def messages_for(self, user: str) -> list[Seen]:
        return [wecom_seen(m) for m in self.sim.messages_for(user)]

    def group_messages(self, chat_id: str) -> list[Seen]:
        return [wecom_seen(m) for m in self.sim.chat_messages(chat_id)]

    def changes(self, card: Seen) -> list[CardChange]:
        return [CardChange(u.body["button"]["replace_name"], tuple(u.body.get("userids") or ()))
                for u in self.sim.card_updates if u.task_id == card.task_id]

    def picture(self, image: Seen) -> bytes:
        return self.sim.media[image.body["image"]["media_id"]].data

    async def says(self, user: str, text: str) -> Sent:
        return await self.sim.user(user).says(text)

    async def sends_photo(self, user: str, data: bytes) -> Sent:
        return await self.sim.user(user).sends_photo(data, "image/png")

    async def sends_location(self, user: str, lat: float, lng: float, label: str) -> Sent:
        """WeCom only: a DingTalk robot is sent no locations."""
        return await self.sim.user(user).sends_location(lat, lng, label)

    async def sends_lost_photo(self, user: str) -> None:
        """An image whose MediaId WeCom no longer keeps (media/get answers 40007)."""
        plaintext = (f"<xml><ToUserName>{CORP_ID}</ToUserName><FromUserName>{user}"
                     "</FromUserName><CreateTime>1764400002</CreateTime><MsgType>image</MsgType>"
                     "<PicUrl>x</PicUrl><MediaId>expired-media-id</MediaId><MsgId>99001</MsgId>"
                     f"<AgentID>{AGENT_ID}</AgentID></xml>")
        assert (await self.sim.user(user).send_plaintext(plaintext)).status == 200

    async def uses_menu(self, user: str, key: str, word: str) -> None:
        assert (await self.sim.user(user).clicks_menu(key)).status == 200

    async def clicks(self, user: str, card: Seen, key: str, selected: str = "") -> Sent:
        chosen = {card.selection: [selected]} if selected else None
        return await self.sim.user(user).clicks(card.task_id, key, selected=chosen)

    async def sends_again(self, user: str, sent: Sent) -> None:
        """The same sealed XML: WeCom's retry of a callback it got no answer to in time."""
        assert isinstance(sent, wecom.CallbackResult)
        assert (await self.sim.user(user).send_plaintext(sent.plaintext)).status == 200

    def fail_next_sends(self, times: int) -> None:
        self.sim.fail_next("message/send", -1, times=times)       # 系统繁忙

    async def group_chats_ready(self) -> None:
        """Created by the service (appchat/create)."""
        chats = [chat.chat_id for chat in await GroupChat.all()]
        await self.until(lambda: all(c in self.sim.chats for c in chats),
                         explain=lambda: f"chats {chats}; WeCom has {list(self.sim.chats)}")


class DingTalkPhone(Phone[DingTalkSimulator]):
    platform = "dingtalk"
    limits = dingtalk_channel.LIMITS

    def __init__(self, sim: DingTalkSimulator) -> None:
        super().__init__(sim)
        self._conversations: dict[str, str] = {}     # our chat id -> DingTalk's

    def messages_for(self, user: str) -> list[Seen]:
        return [dingtalk_seen(m) for m in self.sim.messages_for(user)]

    def group_messages(self, chat_id: str) -> list[Seen]:
        conversation = self._conversations.get(chat_id, chat_id)
        return [dingtalk_seen(m) for m in self.sim.chat_messages(conversation)]

    def changes(self, card: Seen) -> list[CardChange]:
        """PUT card/instances: `status` in the card's data for everyone, or in each named
        person's private data."""
        found: list[CardChange] = []
        for update in self.sim.card_updates:
            if update.out_track_id != card.task_id:
                continue
            body = update.body
            if "cardData" in body:
                found.append(CardChange(body["cardData"]["cardParamMap"]["status"]))
            private = body.get("privateData") or {}
            for text in {v["cardParamMap"]["status"] for v in private.values()}:
                found.append(CardChange(text, tuple(
                    u for u, v in private.items() if v["cardParamMap"]["status"] == text)))
        return found

    def picture(self, image: Seen) -> bytes:
        return self.sim.media[image.body["photoURL"]].data

    async def says(self, user: str, text: str) -> Sent:
        return await self.sim.user(user).says(text)

    async def sends_photo(self, user: str, data: bytes) -> Sent:
        return await self.sim.user(user).sends_photo(data, "image/png")

    async def sends_lost_photo(self, user: str) -> None:
        """messageFiles/download no longer knows the picture's downloadCode."""
        self.sim.fail_next("robot/messageFiles/download", 400, "invalidParameter.downloadCode")
        assert (await self.sends_photo(user, photo())).status == 200

    async def uses_menu(self, user: str, key: str, word: str) -> None:
        """A DingTalk robot has no app menu of ours: people type the word."""
        assert (await self.says(user, word)).status == 200

    async def clicks(self, user: str, card: Seen, key: str, selected: str = "") -> Sent:
        """The template binds `key`, and with a drop-down `selection` and `selected`
        (config/dingtalk/)."""
        params = {"key": key}
        if selected:
            params |= {"selection": card.selection, "selected": selected}
        return await self.sim.user(user).clicks(card.task_id, params)

    async def sends_again(self, user: str, sent: Sent) -> None:
        """The same callback in a new frame, as after a reconnect."""
        assert isinstance(sent, dingtalk.CallbackResult)
        assert (await self.sim.user(user).resend(sent)).status == 200

    def fail_next_sends(self, times: int) -> None:
        for path in ("robot/oToMessages/batchSend", "card/instances/createAndDeliver"):
            self.sim.fail_next(path, 500, "InternalError", times)

    async def group_chats_ready(self) -> None:
        """Scene groups the service created from the plant's template; DingTalk names them."""
        await settled()
        chats = [chat.chat_id for chat in await GroupChat.all()]
        self._conversations = {g.chat_id: g.open_conversation_id
                               for g in await DingTalkGroup.filter(chat_id__in=chats)}
        assert all(self._conversations.get(c) in self.sim.groups for c in chats), \
            f"chats {chats}; created {self._conversations}"


def phone_of(sim: Simulator) -> Phone[Any]:
    if isinstance(sim, WeComSimulator):
        return WeComPhone(sim)
    return DingTalkPhone(sim)


class Person:
    """One person's phone: what they send, and what they have read so far."""

    def __init__(self, phone: Phone[Any] | Simulator, user_id: str) -> None:
        self.phone: Phone[Any] = phone if isinstance(phone, Phone) else phone_of(phone)
        self.id = user_id
        self.read = 0

    async def says(self, text: str) -> None:
        assert (await self.phone.says(self.id, text)).status == 200

    async def sends_photo(self, data: bytes | None = None) -> None:
        assert (await self.phone.sends_photo(self.id, data or photo())).status == 200

    async def sends_location(self, lat: float, lng: float, label: str = "") -> None:
        assert isinstance(self.phone, WeComPhone), "locations are WeCom's only"
        assert (await self.phone.sends_location(self.id, lat, lng, label)).status == 200

    async def expect(self, *words: str, timeout: float = 10.0) -> Seen:  # noqa: ASYNC109
        """The next unread message that contains every word; skips nothing silently: the
        messages passed over stay readable through `unread`."""
        def found() -> Seen | None:
            for i, message in enumerate(self.phone.messages_for(self.id)[self.read:],
                                        self.read):
                if all(w in message.text for w in words):
                    self.read = i + 1
                    return message
            return None

        await self.phone.until(lambda: found() is not None, timeout,
                               lambda: f"{self.id} got no message with {words}; unread: "
                                       f"{[m.text for m in self.unread()]}")
        return self.phone.messages_for(self.id)[self.read - 1]

    def unread(self) -> list[Seen]:
        return self.phone.messages_for(self.id)[self.read:]

    async def clicks(self, card: Seen, label: str, selected: str = "") -> Sent:
        """Press the button labelled `label`, with the drop-down's option `selected` chosen;
        returns the delivery, for `phone.sends_again`."""
        [key] = [k for text, k in card.buttons if text == label]
        sent = await self.phone.clicks(self.id, card, key, selected)
        assert sent.status == 200
        return sent


def around_the_clock(folder: Path) -> dict[str, Any]:
    """`plant` settings where every hour of every day is working time, whenever a test runs:
    no ladder step waits for a morning, a weekend or a holiday, nor for its share of the
    spread."""
    calendar = folder / "calendar.toml"
    calendar.write_text("weekend = []\n", encoding="utf-8")
    return {"schedule_spread_minutes": 0, "schedule_quiet_hours": "00:00-00:00",
            "schedule_calendar_file": calendar}


def demo_ledger(path: Path, today: date, changes: dict[str, str] | None = None) -> Path:
    """The demo ledger written to `path`, `changes` made (old text: new), with every date moved
    so that on `today` it reads as on the day it was written: a service runs on the wall
    clock, and the tests must not age with it."""
    text = DEMO_LEDGER.read_text(encoding="utf-8")
    for old, new in (changes or {}).items():
        assert text.count(old) == 1, f"{old!r} must occur once in the ledger"
        text = text.replace(old, new)
    moved = today - LEDGER_WRITTEN
    path.write_text(re.sub(r"\b\d{4}-\d{2}-\d{2}\b", lambda m: str(
        date.fromisoformat(m.group()) + moved), text), encoding="utf-8")
    return path


@asynccontextmanager
async def plant(database_url: str, media_dir: Path, clock: ManualClock | None = None,
                platform: str = "wecom", roster_media: MediaStore | None = None,
                **overrides: Any) -> AsyncIterator[tuple[Simulator, Service]]:
    """The demo org loaded, the `platform`'s simulator and the service running; the database
    must be empty. `clock`: the service's "now" (by default a running `ManualClock`; it is
    `service.clock`). On DingTalk the service speaks to its simulator by Stream, WeCom off, and
    makes the plans' groups from a scene-group template. The roster's evacuation maps go into
    the service's media store, or `roster_media` for a test that breaks that store first."""
    clock = clock or ManualClock()
    users = [u.id for u in parse_roster(DEMO_ORG.read_text(encoding="utf-8")).users]
    sim: Simulator
    if platform == "wecom":
        sim = WeComSimulator(CORP_ID, AGENT_ID, SECRET, TOKEN, AES_KEY, users=users,
                             per_member_per_minute=10_000)
        await sim.start()
        settings = service_settings(database_url, sim.base_url, media_dir,
                                    wecom_per_member_per_minute=10_000, **overrides)
    elif platform == "dingtalk":
        sim = DingTalkSimulator(DINGTALK_CLIENT_ID, DINGTALK_SECRET, DINGTALK_ROBOT, users=users,
                                per_user_per_minute=10_000)
        await sim.start()
        settings = service_settings(database_url, "", media_dir, dingtalk=sim.base_url,
                                    dingtalk_per_person_per_minute=10_000,
                                    dingtalk_group_template_id=DINGTALK_GROUP_TEMPLATE,
                                    **overrides)
    else:
        raise ValueError(f"platform is one of {PLATFORMS}, not {platform!r}")
    async with opened(roster_media or open_store(settings)) as store:
        await load_org(DEMO_ORG, clock(), store)
    service = Service(settings, clock)
    await service.start()
    if isinstance(sim, WeComSimulator):
        sim.callback_url = f"{service.url}/wecom/callback"
    try:
        yield sim, service
    finally:
        await service.stop()
        await sim.stop()


@asynccontextmanager
async def web_chat_plant(database_url: str, media_dir: Path, **overrides: Any
                         ) -> AsyncIterator[tuple[aiohttp.ClientSession, Service]]:
    """The demo plant as `make run` leaves it, for the README's walk-throughs in the web chat:
    the roster, the courses, the demo training ledger and the patrol sites loaded by the CLI,
    and everyone on the web chat (WeCom stays configured), so that their cards come there."""
    async with plant(database_url, media_dir, **overrides) as (_, service), \
            aiohttp.ClientSession() as http:
        await User.all().update(platform="webchat")
        env = {"SAFETYBOT_DATABASE_URL": database_url, "SAFETYBOT_MEDIA_DIR": str(media_dir)}
        for command in (("load-training",), ("import-training", str(DEMO_TRAINING)),
                        ("load-inspections",)):
            done = cli(*command, env=env)
            assert done.returncode == 0, done.stderr
        yield http, service
