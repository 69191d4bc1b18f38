"""DingTalk (钉钉): rendering and delivery, and the plug-in that declares DingTalk with its limits
and its ways in (chat-protocols.md §7): Stream (`dingtalk_stream.py`) or the HTTP callback, both
storing through `dingtalk_inbound.py`; everything else happens later from the inbox, as for
WeCom."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

import aiohttp
from aiohttp import web

from bot.channels import (
    Delivery,
    Edges,
    MediaGone,
    Outcome,
    PlatformUnavailable,
    Plugin,
    Stream,
    Unreachable,
    Verdict,
    platform_upload,
)
from bot.channels.dingtalk_api import PLATFORM, DingTalkApi, DingTalkError
from bot.channels.dingtalk_groups import conversation_of, remember_group
from bot.channels.dingtalk_inbound import TASK_TAG, DingTalkCallback, Receiver, object_of
from bot.channels.dingtalk_stream import StreamClient
from bot.media import MediaStore
from bot.settings import DingTalkSettings, Settings
from models.markup import render_markdown
from models.outgoing import (
    CHAT_PREFIX,
    Card,
    CardUpdate,
    File,
    GroupCreate,
    GroupUpdate,
    Image,
    Limits,
    Markdown,
    Outgoing,
    Text,
    fit_text,
)

log = logging.getLogger(__name__)

# §7.3: batchSend names at most 20 people a call; a group message holds 15,000 bytes and a
# markdown message is cut well within it (5,000 bytes is what we render, the simulator's
# ceiling). Cards are the plant's template (config/dingtalk/), which shows up to 6 buttons,
# 10 rows and a drop-down of 10 options. DingTalk has no duplicate check to ask for. Its other
# limits are answers, not sizes: flow control per person (`flowControlledStaffIdList`, retried a
# minute later), the month's API quota of non-paid editions (`quota_spent`: failed, said once in
# the log and kept for `safetybot outbox retry`). Robot messages, not 工作通知, so the once-a-day
# rule for identical work notices does not apply (§7.3, §7.5).
LIMITS = Limits(message_bytes=5000, card_buttons=6, card_rows=10, card_options=10,
                option_chars=20, card_body_chars=500, per_person_per_minute=20,
                recipients_per_call=20, duplicate_check_seconds=0)


def limits(settings: Settings) -> Limits:
    return replace(LIMITS, per_person_per_minute=settings.dingtalk.per_person_per_minute)


# ---------------------------------------------------------------------------------------------
# Outbound


def robot_message(message: Text | Markdown | Card | Image | File, limits: Limits = LIMITS,
                  media_id: str = "") -> tuple[str, str]:
    """(msgKey, msgParam) of a robot message (§7.3); msgParam is a JSON string. A picture or
    document names its upload, `media_id`."""
    if isinstance(message, Image):
        return "sampleImageMsg", json.dumps({"photoURL": media_id})
    if isinstance(message, File):
        extension = message.filename.rsplit(".", 1)[-1] if "." in message.filename else ""
        return "sampleFile", json.dumps({"mediaId": media_id, "fileName": message.filename,
                                         "fileType": extension}, ensure_ascii=False)
    if isinstance(message, Text):
        key, param = "sampleText", {"content": fit_text(message.content, limits.message_bytes)}
    else:
        text = (render_markdown(message.content, room=limits.message_bytes)
                if isinstance(message, Markdown) else message.as_markdown(limits.message_bytes))
        key, param = "sampleMarkdown", {"title": _title(text), "text": text}
    return key, json.dumps(param, ensure_ascii=False)


def _title(markdown: str) -> str:
    """What the notification shows: the first line, without markdown's marks."""
    first = markdown.strip().split("\n", 1)[0]
    return first.strip("#*> ").replace("**", "")[:30] or "安全助手"


def card_params(card: Card, limits: Limits = LIMITS) -> dict[str, str]:
    """The template's variables (config/dingtalk/card-template.json); all strings (§7.4)."""
    card = card.within(limits)
    pick = card.selection

    def dumped(value: object) -> str:
        return json.dumps(value, ensure_ascii=False)

    return {
        "title": card.title, "description": card.description, "body": card.body,
        "fields": dumped([{"key": k, "value": v} for k, v in card.fields]),
        "buttons": dumped([{"text": b.text, "key": b.key, "style": str(b.style)}
                           for b in card.buttons]),
        "selection": dumped({"key": pick.key, "title": pick.title, "selected": pick.selected,
                             "options": [{"id": i, "text": t} for i, t in pick.options]}
                            ) if pick else "",
        "status": "", "done": "false",
    }


class DingTalkChannel:
    """Delivers outbox messages through DingTalk's API and fetches inbound pictures."""

    platform = PLATFORM
    # "There is no time limit on how long files are stored … the media_id returned when
    # uploading a file remains valid" (help.dingtalk.io, media files overview). Reused for a
    # month all the same: the claim is the help page's, and an id refused is uploaded again.
    media_reuse: timedelta | None = timedelta(days=30)

    def __init__(self, settings: DingTalkSettings, api: DingTalkApi, media: MediaStore,
                 limits: Limits = LIMITS) -> None:
        self._s = settings
        self._api = api
        self._media = media
        self.limits = limits

    async def fetch_media(self, media_id: str) -> AsyncIterator[bytes]:
        """A picture's downloadCode → a temporary URL → the bytes (§7.1)."""
        try:
            answer = await self._api.call("POST", "robot/messageFiles/download", json={
                "downloadCode": media_id, "robotCode": self._s.robot})
            async for chunk in self._api.fetch(str(answer["downloadUrl"])):
                yield chunk
        except DingTalkError as exc:
            if exc.retry_after is None and not exc.token_refused:
                raise MediaGone(str(exc)) from exc
            raise PlatformUnavailable(str(exc)) from exc

    async def upload(self, message: Image | File) -> str:
        return await platform_upload(message, self._media,
                                     lambda spooled: self._api.upload(spooled, message.type),
                                     DingTalkError, _outcome)

    async def deliver(self, key: str, message: Outgoing, recipients: Sequence[str],
                      duplicate_check: float = 0.0, batch: str = "", media_id: str = ""
                      ) -> Delivery:
        try:
            if isinstance(message, GroupCreate):
                return await self._create_group(message, recipients)
            if isinstance(message, GroupUpdate):
                return await self._update_group(message, recipients)
            if isinstance(message, CardUpdate):
                return await self._update_card(message, recipients)
            chats = [r for r in recipients if r.startswith(CHAT_PREFIX)]
            if isinstance(message, Card) and message.buttons:
                if chats:
                    raise TypeError("cards go to people, not to group chats")
                return await self._cards(message, recipients, batch)
            if not isinstance(message, Text | Markdown | Card | Image | File):
                raise TypeError(f"{message.type} is not a chat message")
            msg_key, param = robot_message(message, self.limits, media_id)
            if chats:
                return await self._to_chats(msg_key, param, chats, bool(media_id))
            return await self._to_people(msg_key, param, recipients)
        except DingTalkError as exc:
            return Delivery({r: _outcome(exc, bool(media_id)) for r in recipients}, {})
        except Unreachable as exc:
            return Delivery({r: Outcome.unreachable(exc) for r in recipients}, {})

    async def _to_people(self, msg_key: str, param: str, recipients: Sequence[str]
                         ) -> Delivery:
        """One batchSend (the dispatcher hands at most 20): each person's own outcome."""
        answer = await self._api.call("POST", "robot/oToMessages/batchSend", json={
            "robotCode": self._s.robot, "userIds": list(recipients), "msgKey": msg_key,
            "msgParam": param})
        invalid = set(answer.get("invalidStaffIdList") or [])
        slowed = set(answer.get("flowControlledStaffIdList") or [])
        outcomes = {
            r: Outcome(Verdict.INVALID, "invalidStaffId") if r in invalid
            else Outcome(Verdict.RETRY, "flowControlled", 60.0) if r in slowed
            else Outcome.sent()
            for r in recipients
        }
        return Delivery(outcomes, {"processQueryKeys": [answer.get("processQueryKey")]})

    async def _to_chats(self, msg_key: str, param: str, chats: Sequence[str], media: bool
                        ) -> Delivery:
        """A group the service created is named by its DingTalk id; another group, one the
        robot was added to, by the id the plan gives it. `media`: the message names an
        upload."""
        outcomes: dict[str, Outcome] = {}
        for chat in chats:
            chat_id = chat.removeprefix(CHAT_PREFIX)
            try:
                await self._api.call("POST", "robot/groupMessages/send", json={
                    "robotCode": self._s.robot, "msgKey": msg_key, "msgParam": param,
                    "openConversationId": await conversation_of(chat_id) or chat_id})
                outcomes[chat] = Outcome.sent()
            except DingTalkError as exc:
                outcomes[chat] = _outcome(exc, media)
            except Unreachable as exc:
                outcomes[chat] = Outcome.unreachable(exc)
        return Delivery(outcomes, {})

    async def _create_group(self, message: GroupCreate, recipients: Sequence[str]) -> Delivery:
        """A scene group (场景群) from the plant's template, whose robot is ours; `uuid` makes a
        repeated create answer the group made the first time."""
        if not self._s.group_template_id:
            detail = ("set SAFETYBOT_DINGTALK_GROUP_TEMPLATE_ID (a scene-group template with "
                      f"this app's robot) so that group {message.chat_id} can be created")
            return Delivery({r: Outcome(Verdict.FAILED, detail) for r in recipients}, {})
        answer = await self._api.legacy("topapi/im/chat/scenegroup/create", json={
            "title": message.name, "template_id": self._s.group_template_id,
            "owner_user_id": message.owner, "user_ids": ",".join(message.members),
            "uuid": message.chat_id})
        conversation = str(object_of(answer.get("result")).get("open_conversation_id") or "")
        if not conversation:
            raise DingTalkError(200, "-1", "scenegroup/create answered without a group id")
        await remember_group(message.chat_id, conversation)
        return Delivery({r: Outcome.sent() for r in recipients},
                        {"openConversationId": conversation})

    async def _update_group(self, message: GroupUpdate, recipients: Sequence[str]) -> Delivery:
        conversation = await conversation_of(message.chat_id)
        if conversation is None:
            detail = f"group {message.chat_id} was never created on DingTalk"
            return Delivery({r: Outcome(Verdict.FAILED, detail) for r in recipients}, {})
        group = {"open_conversation_id": conversation}
        if message.add:
            await self._api.legacy("topapi/im/chat/scenegroup/member/add",
                                   json={**group, "user_ids": ",".join(message.add)})
        if message.owner:          # before the removal: the owner may be among those removed
            await self._api.legacy("topapi/im/chat/scenegroup/update",
                                   json={**group, "owner_user_id": message.owner})
        if message.remove:
            await self._api.legacy("topapi/im/chat/scenegroup/member/delete",
                                   json={**group, "user_ids": ",".join(message.remove)})
        return Delivery({r: Outcome.sent() for r in recipients}, {})

    async def _cards(self, card: Card, people: Sequence[str], batch: str) -> Delivery:
        """One card instance for these people (`outTrackId` our card id, single-use): a
        decision updates every copy at once (§7.4)."""
        track = f"{card.task_id}{TASK_TAG}{batch}" if batch else card.task_id
        try:
            answer = await self._api.call("POST", "card/instances/createAndDeliver", json={
                "cardTemplateId": self._s.card_template_id, "outTrackId": track,
                "cardData": {"cardParamMap": card_params(card, self.limits)},
                "callbackType": "STREAM",
                "openSpaceId": "dtv1.card//" + ";".join(f"IM_ROBOT.{p}" for p in people),
                "imRobotOpenSpaceModel": {"supportForward": False},
                "imRobotOpenDeliverModel": {"spaceType": "IM_ROBOT", "robotCode": self._s.robot},
                "userIdType": 1,
            })
        except DingTalkError as exc:
            if "outTrackId" in exc.code and "Exist" in exc.code:
                # The id is taken: an earlier attempt that timed out did reach DingTalk.
                return Delivery({p: Outcome(Verdict.SENT, exc.code) for p in people}, {})
            raise
        result = object_of(answer.get("result"))
        failed = {str(r.get("spaceId")): str(r.get("errorMsg") or "not delivered")[:200]
                  for r in result.get("deliverResults") or []
                  if isinstance(r, dict) and not r.get("success", True)}
        outcomes = {p: Outcome(Verdict.INVALID, failed[p]) if p in failed else Outcome.sent()
                    for p in people}
        return Delivery(outcomes, {"outTrackIds": [track]})

    async def _update_card(self, message: CardUpdate, recipients: Sequence[str]) -> Delivery:
        """Everyone's copy, or only `users`' own view (private data) (§7.4)."""
        shown = {"cardParamMap": {"status": message.replace_text, "done": "true"}}
        body: dict[str, Any] = {
            "outTrackId": message.response_code,
            "cardUpdateOptions": {"updateCardDataByKey": True, "updatePrivateDataByKey": True},
        }
        if message.users:
            body["privateData"] = {user: shown for user in message.users}
        else:
            body["cardData"] = shown
        await self._api.call("PUT", "card/instances", json=body)
        return Delivery({r: Outcome.sent() for r in recipients}, {})


def _outcome(exc: DingTalkError, media: bool = False) -> Outcome:
    """What a refusal means for a delivery; `media`: the message named an upload, so a refused
    msgParam (which then holds little but the media id) says the id is unknown."""
    detail = f"{exc.status} {exc.code} {exc.message}"[:200]
    if media and exc.status == 400 and "msgParam" in exc.code:
        return Outcome(Verdict.FAILED, detail, media_gone=True)
    if exc.quota_spent:
        log.error("DingTalk's monthly API quota is used up; messages fail until next month or "
                  "a paid edition: %s", detail)
        return Outcome(Verdict.FAILED, f"monthly API quota used up: {detail}"[:200])
    if exc.retry_after is not None:
        return Outcome(Verdict.RETRY, detail, exc.retry_after)
    if exc.token_refused:
        return Outcome(Verdict.RETRY, detail, 30.0)   # credentials rotated: an admin's fix
    return Outcome(Verdict.FAILED, detail)


# ---------------------------------------------------------------------------------------------
# The plug-in


class DingTalkConnector:
    """DingTalk either posts to `/dingtalk/callback` (mode http) or is reached by the Stream
    connection this process may hold (mode stream); the channel sends through its API."""

    def __init__(self, edges: Edges) -> None:
        self._edges = edges
        self._receiver = Receiver(edges.settings.dingtalk, edges.sink)

    def routes(self) -> list[web.RouteDef]:
        settings = self._edges.settings
        if settings.dingtalk.mode != "http":
            return []
        return DingTalkCallback(settings.dingtalk, self._receiver,
                                settings.max_body_bytes).routes()

    def stream(self) -> Stream | None:
        if self._edges.settings.dingtalk.mode != "stream":
            return None
        return StreamClient(self._edges, self._receiver.take).run

    def channel(self, session: aiohttp.ClientSession) -> DingTalkChannel:
        edges = self._edges
        api = DingTalkApi(edges.settings.dingtalk, session, edges.instance, edges.clock)
        return DingTalkChannel(edges.settings.dingtalk, api, edges.media, limits(edges.settings))

PLUGIN = Plugin(PLATFORM, enabled=lambda settings: settings.dingtalk.enabled, limits=limits,
                connect=DingTalkConnector)
