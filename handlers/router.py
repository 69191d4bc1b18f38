"""Routers: handlers declare what they answer, the router picks the first that fits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from models.catalog import Catalog
from models.messaging import Inbound, InboundKind, Outgoing, Priority, enqueue
from models.org import User


@dataclass(frozen=True)
class Rules:
    """What the handlers need from configuration, built once by the app."""

    catalog: Catalog
    tz: ZoneInfo
    is_image: Callable[[str], Awaitable[bool]]   # by a stored file's content hash
    draft_idle: timedelta = timedelta(minutes=30)
    photo_window: timedelta = timedelta(seconds=60)
    repeat_window: timedelta = timedelta(hours=72)
    text_max: int = 500


@dataclass
class Context:
    """One inbound event being handled, and the way to answer it through the outbox."""

    event: Inbound
    user: User | None
    now: datetime
    event_id: int
    rules: Rules
    _sent: int = field(default=0, init=False)

    @property
    def me(self) -> User:
        """The sender, once `handle` has turned strangers away."""
        assert self.user is not None
        return self.user

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.rules.tz)

    async def reply(self, message: Outgoing) -> None:
        await self.send(message, to_users=[self.event.user_id])

    async def send(
        self, message: Outgoing, *, to_users: Sequence[str] = (), to_chat: str = "",
        priority: Priority = Priority.ROUTINE,
    ) -> None:
        """Queue a message; the key derives from the inbox event, so a redelivery sends nothing
        twice."""
        self._sent += 1
        await enqueue(
            f"in:{self.event_id}:{self._sent}", message, now=self.now,
            platform=self.event.platform, to_users=to_users, to_chat=to_chat, priority=priority,
        )


Handler = Callable[[Context], Awaitable[None]]
Predicate = Callable[[Inbound], bool]


class Router:
    def __init__(self) -> None:
        self._routes: list[tuple[Predicate, Handler]] = []

    def on(self, predicate: Predicate) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self._routes.append((predicate, handler))
            return handler

        return register

    def text(self, *words: str) -> Callable[[Handler], Handler]:
        """A text message that is exactly one of `words` (surrounding blanks ignored)."""
        accepted = frozenset(words)
        return self.on(lambda e: e.kind is InboundKind.TEXT and e.text.strip() in accepted)

    def kind(self, *kinds: InboundKind) -> Callable[[Handler], Handler]:
        return self.on(lambda e: e.kind in kinds)

    def card_action(self, prefix: str) -> Callable[[Handler], Handler]:
        """A card click whose key starts with `prefix:`."""
        return self.on(lambda e: e.kind is InboundKind.CARD_ACTION
                       and e.event_key.startswith(prefix + ":"))

    def include(self, other: Router) -> None:
        self._routes.extend(other._routes)

    async def dispatch(self, ctx: Context) -> bool:
        for predicate, handler in self._routes:
            if predicate(ctx.event):
                await handler(ctx)
                return True
        return False
