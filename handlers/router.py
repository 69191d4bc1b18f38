"""Routers: handlers declare what they answer, the router picks the first that takes it; and the
context a handler answers in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from models.calendar import WorkCalendar
from models.catalog import Catalog
from models.dialog import Dialog, dialog_of, sender_with_dialog
from models.emergency import EmergencyPolicy
from models.inbound import Inbound, InboundKind
from models.inbox import inbox_put
from models.inspection.rules import InspectionRules
from models.org import User
from models.outbox import Queued, enqueue_many
from models.outgoing import Limits, Outgoing, Priority, limits_of
from models.people.rules import QualificationRules
from models.training.rules import TrainingRules


async def _no_codes(_: str) -> list[str]:
    return []


@dataclass(frozen=True)
class Rules:
    """What the handlers need from configuration, built once by the app."""

    catalog: Catalog
    tz: ZoneInfo
    is_image: Callable[[str], Awaitable[bool]]   # by a stored file's content hash
    draft_idle: timedelta = timedelta(minutes=30)
    photo_window: timedelta = timedelta(seconds=60)
    repeat_window: timedelta = timedelta(hours=72)
    recurrence_window: timedelta = timedelta(days=90)
    text_max: int = 500
    emergency: EmergencyPolicy = field(default_factory=EmergencyPolicy)
    limits: Mapping[str, Limits] = field(default_factory=dict)   # by platform
    home: str = "wecom"     # where people without a platform of their own are reached
    calendar: WorkCalendar = field(      # working days: a 一般 ticket's deadline counts them
        default_factory=lambda: WorkCalendar(ZoneInfo("Asia/Shanghai")))
    qualification: QualificationRules = field(default_factory=QualificationRules)
    training: TrainingRules = field(default_factory=TrainingRules)
    inspection: InspectionRules = field(default_factory=InspectionRules)
    # The QR codes in a stored photo, by its content hash (decoded on the server).
    read_codes: Callable[[str], Awaitable[list[str]]] = _no_codes


@dataclass
class Context:
    """One inbound event being handled, and the way to answer it through the outbox."""

    event: Inbound
    user: User | None
    now: datetime
    event_id: int
    rules: Rules
    # The sender's open question as read together with the sender (see `load`); used once.
    preloaded: Dialog | None = None
    _outgoing: list[tuple[Priority, Queued]] = field(default_factory=list, init=False)

    @classmethod
    async def load(cls, event: Inbound, now: datetime, event_id: int, rules: Rules) -> Context:
        """The context of an event whose lease (the person's lock) is held: the sender, if an
        active member, and their open question, in one query rather than two. From here on the
        event names the sender by the roster's id, whatever their id on the platform."""
        user, dialog = await sender_with_dialog(event.user_id, event.platform)
        if user is not None and user.id != event.user_id:
            event = replace(event, user_id=user.id)
        return cls(event=event, user=user, now=now, event_id=event_id, rules=rules,
                   preloaded=dialog)

    @property
    def me(self) -> User:
        """The sender, once `handle` has turned strangers away."""
        assert self.user is not None
        return self.user

    async def dialog(self, kind: str = "") -> Dialog | None:
        """The sender's open question (of `kind`, if given). The first call answers from the row
        read with the sender; later ones read it again, as this event may have changed it."""
        dialog, self.preloaded = self.preloaded, None
        if dialog is None:
            dialog = await dialog_of(self.me.id)
        return dialog if dialog is not None and kind in ("", dialog.kind) else None

    @property
    def limits(self) -> Limits:
        """What the platform the event came from holds (message bytes, card rows …)."""
        return limits_of(self.rules.limits, self.event.platform)

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.rules.tz)

    async def reply(self, message: Outgoing) -> None:
        await self.send(message, to_users=[self.event.user_id])

    async def send(
        self, message: Outgoing, *, to_users: Sequence[str] = (), to_chat: str = "",
        priority: Priority = Priority.ROUTINE,
    ) -> None:
        """Queue a message with `flush`, in the handler's transaction; the key derives from the
        inbox event, so a redelivery sends nothing twice."""
        key = f"in:{self.event_id}:{len(self._outgoing) + 1}"
        self._outgoing.append((priority, Queued(key, message, to_users, to_chat)))

    async def flush(self) -> None:
        """Write the handler's messages to the outbox together: two statements per priority
        rather than two per message (a 提交 sends four)."""
        for priority in sorted({p for p, _ in self._outgoing}, reverse=True):
            await enqueue_many([q for p, q in self._outgoing if p is priority], now=self.now,
                               platform=self.rules.home, priority=priority,
                               sender=(self.event.user_id, self.event.platform))
        self._outgoing.clear()

    async def follow_up(self, key: str) -> None:
        """Queue the next step of this work as an event of the sender's, handled once this one
        has committed: a decision and its first messages need not wait for slow work (ten
        thousand cards), and the step is as durable as a message, retried until done."""
        await inbox_put(Inbound(platform=self.event.platform, user_id=self.event.user_id,
                                kind=InboundKind.FOLLOW_UP, dedup_key=f"follow:{key}",
                                event_key=key, raw_type="follow_up"), self.now)


# A handler returns nothing when it took the event, or False to leave it to the routes after it.
Handler = Callable[[Context], Awaitable[bool | None]]
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
        return self._keyed(InboundKind.CARD_ACTION, prefix)

    def follow_up(self, prefix: str) -> Callable[[Handler], Handler]:
        """A step queued by `Context.follow_up` with a key that starts with `prefix:`."""
        return self._keyed(InboundKind.FOLLOW_UP, prefix)

    def _keyed(self, kind: InboundKind, prefix: str) -> Callable[[Handler], Handler]:
        return self.on(lambda e: e.kind is kind and e.event_key.startswith(prefix + ":"))

    def include(self, other: Router) -> None:
        self._routes.extend(other._routes)

    def matches(self, event: Inbound) -> bool:
        """Whether a route of this router would be asked to take `event`."""
        return any(predicate(event) for predicate, _ in self._routes)

    async def dispatch(self, ctx: Context) -> bool:
        """The first route that takes the event; False when none does."""
        for predicate, handler in self._routes:
            if predicate(ctx.event) and await handler(ctx) is not False:
                return True
        return False
