"""Dialogs as tables: a dialog declares its steps, and this framework runs them against the
person's durable dialog row (models/dialog.py), so a restart in the middle of a question loses
nothing.

A step says what it asks and how an answer parses. An answer that does not fit raises `Retry`
(the hint alone) or `Reask` (the hint, then the question again); one that fits is kept in the
row's data, and the dialog moves to its next step — by default the first step not yet answered;
a dialog that asks "only for what is missing" says what is missing instead. 取消 ends any dialog,
返回 goes back one question where the dialog allows it, and an unanswered question expires through
the inbox (`expired`). A quiz, an inspection checklist or a pre-work check is a dialog too: a
class with its steps, registered by its module.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, Generic, TypeVar

from handlers.replies import photo_refused
from handlers.router import Context
from models.dialog import Dialog as DialogRow
from models.dialog import ask, close_dialog, forget_answer, go_back, open_dialog
from models.inbound import InboundKind
from models.outgoing import Outgoing, Priority, Text

S = TypeVar("S")                                   # what the dialog fills: a draft, a ticket …
Question = str | Callable[[Any], Awaitable[str | Outgoing | None]]
Parser = Callable[[Any, str], Awaitable[Any]]


class Retry(Exception):
    """The answer does not fit: the person is told `hint`, the question stays open."""

    def __init__(self, hint: str) -> None:
        super().__init__(hint)
        self.hint = hint


class Reask(Retry):
    """The answer does not fit: `hint`, then the question again, in one message."""


async def _as_given(_: Any, text: str) -> str:
    return text


class Step:
    """One question of a dialog: what it asks (a text, or a function of the dialog that returns
    a text, a card, or None when it sent the question itself), and how a typed answer parses
    (raising `Retry`/`Reask` when it does not). The parsed value is kept in the dialog's data
    under the step's name."""

    def __init__(self, asks: Question, parse: Parser = _as_given) -> None:
        self.asks = asks
        self.parse = parse
        self.name = ""

    async def question(self, dialog: Any) -> str | Outgoing | None:
        return self.asks if isinstance(self.asks, str) else await self.asks(dialog)


class PhotoStep(Step):
    """A question a photo answers (its hash is kept under the step's name); typed text gets
    `typed`, the question staying open."""

    def __init__(self, asks: Question, typed: str) -> None:
        async def refused(_: Any, text: str) -> str:
            raise Retry(typed)

        super().__init__(asks, refused)


class Dialog(Generic[S]):
    """A kind of dialog: its steps as class attributes, in the order they are asked, and what
    取消, 返回 and an expiry do. `subject` is what the dialog fills, loaded from the row."""

    kind: ClassVar[str]
    steps: ClassVar[dict[str, Step]]
    back_allowed: ClassVar[bool] = False
    priority: ClassVar[Priority] = Priority.ROUTINE   # of the dialog's own questions
    # Words this dialog leaves to the routers after it (e.g. 已整改 typed mid-report).
    passes: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = vars(cls).get("steps")     # a dialog may give its steps as a dict instead
        if declared is None:
            inherited = getattr(cls, "steps", {})
            declared = {**inherited, **{k: v for k, v in vars(cls).items()
                                        if isinstance(v, Step)}}
        for name, step in declared.items():
            step.name = name
        cls.steps = declared

    def __init__(self, ctx: Context, row: DialogRow, subject: S) -> None:
        self.ctx = ctx
        self.row = row
        self.subject = subject
        self.moved = False     # the dialog asked, closed or finished in this event
        self.lead = ""         # what goes before the question being asked (see `reask`)

    # --- what a kind of dialog may override -------------------------------------------------

    @classmethod
    async def load(cls, ctx: Context, row: DialogRow) -> S | None:
        """The subject; None when it is gone (the dialog then ends, see `gone`)."""
        raise NotImplementedError

    @classmethod
    async def gone(cls, ctx: Context, row: DialogRow) -> None:
        """The subject went away meanwhile (decided elsewhere): the dialog ends quietly."""
        await close_dialog(row.user_id)

    @classmethod
    async def expire(cls, ctx: Context, row: DialogRow) -> None:
        """Nobody answered in time."""
        await close_dialog(row.user_id)
        await ctx.reply(Text("刚才的操作长时间没有回复，已结束。如需继续，请重新操作。"))

    async def finish(self) -> None:
        """Every step is answered."""
        raise NotImplementedError

    async def cancel(self) -> None:
        await self.close()
        await self.ctx.reply(Text("已取消。"))

    def next_step(self) -> str | None:
        """The first step not answered yet; None when all are."""
        return next((name for name in self.steps if name not in self.data), None)

    async def photo(self) -> None:
        """A photo: the answer to a `PhotoStep` (one that did not arrive, or is not an image, is
        refused); at another step of a dialog that asks for one, not now; in a dialog that never
        does, an empty answer."""
        step = self.steps[self.step]
        if isinstance(step, PhotoStep):
            if not await photo_refused(self.ctx):
                self.remember(**{step.name: self.ctx.event.media})
                await self.advance()
        elif any(isinstance(s, PhotoStep) for s in self.steps.values()):
            await self.reask("现在不需要照片。")
        else:
            await self.answer("")

    async def other(self) -> None:
        """A location, a voice message or a menu click: taken as an empty answer."""
        await self.answer("")

    async def screen(self, text: str) -> None:
        """Checks every typed answer passes before its step parses it (raise `Retry`)."""

    async def no_way_back(self) -> None:
        await self.reask()

    # --- the framework -----------------------------------------------------------------------

    @property
    def data(self) -> dict[str, Any]:
        return self.row.data

    def remember(self, **values: Any) -> None:
        """Keep values in the row (saved with the next question)."""
        self.row.data = {**self.row.data, **values}

    @property
    def step(self) -> str:
        return self.row.step

    @classmethod
    async def open(cls, ctx: Context, step: str, *, ticket_id: int | None = None,
                   data: Mapping[str, Any] | None = None) -> DialogRow:
        """Start this dialog for the sender at `step` (asked by the caller or `start`)."""
        return await open_dialog(ctx.me.id, ctx.event.platform, cls.kind, step, ctx.now,
                                 ctx.rules.draft_idle, ticket_id=ticket_id, data=dict(data or {}))

    @classmethod
    async def start(cls, ctx: Context, subject: S, *, ticket_id: int | None = None,
                    data: Mapping[str, Any] | None = None, lead: str = "") -> Dialog[S]:
        """Open the dialog and ask its first question."""
        first = next(iter(cls.steps))
        dialog = cls(ctx, await cls.open(ctx, first, ticket_id=ticket_id, data=data), subject)
        await dialog.advance(lead)
        return dialog

    async def ask(self, step: str, lead: str = "") -> None:
        """Move to `step` (remembered for 返回) and ask it; `lead` goes in the same message."""
        self.moved = True
        await ask(self.row, step, self.ctx.now, self.ctx.rules.draft_idle)
        await self.reask(lead)

    async def reask(self, lead: str = "") -> None:
        """Ask the open question again, after `lead` (why the last answer did not fit). A step
        that asks by itself (its question returns None) finds `lead` in `self.lead`."""
        self.lead = lead
        question = await self.steps[self.step].question(self)
        if question is None:
            return
        if isinstance(question, str):
            await self.say(Text(f"{lead}\n{question}" if lead else question))
            return
        if lead:
            await self.say(Text(lead))
        await self.say(question)

    async def say(self, message: Outgoing) -> None:
        """A message to the person in the dialog, at the dialog's priority."""
        await self.ctx.send(message, to_users=[self.ctx.me.id], priority=self.priority)

    async def keep_open(self) -> None:
        """The answer is taken and the same question stays open, its time starting again."""
        self.moved = True
        await ask(self.row, self.step, self.ctx.now, self.ctx.rules.draft_idle)

    async def advance(self, lead: str = "") -> None:
        """Ask the next question, or finish when there is none."""
        step = self.next_step()
        if step is None:
            self.moved = True
            await self.finish()
        else:
            await self.ask(step, lead)

    async def close(self) -> None:
        self.moved = True
        await close_dialog(self.row.user_id)

    async def receive(self) -> bool:
        """Handle the person's message; False when it is one of the words the dialog passes."""
        event = self.ctx.event
        if event.kind is InboundKind.IMAGE:
            await self.photo()
            return True
        if event.kind is not InboundKind.TEXT:
            await self.other()
            return True
        text = event.text.strip()
        if text == "取消":
            await self.cancel()
            return True
        if self.passes and text.startswith(self.passes):
            return False
        if text == "返回" and self.back_allowed:
            await self.back()
            return True
        await self.answer(text)
        return True

    async def answer(self, text: str) -> None:
        """The open step's answer: kept and the dialog moved on, or the person told why not."""
        step = self.steps[self.step]
        try:
            await self.screen(text)
            value = await step.parse(self, text)
        except Reask as wrong:
            await self.reask(wrong.hint)
            return
        except Retry as wrong:
            await self.say(Text(wrong.hint))
            return
        if not self.moved:       # else the step's answer moved the dialog itself (提交, 修改 …)
            self.remember(**{step.name: value})
            await self.advance()

    async def back(self) -> None:
        """返回: the previous question again."""
        step = await go_back(self.row, self.ctx.now, self.ctx.rules.draft_idle)
        if step is None:
            await self.no_way_back()
            return
        await self.went_back(step)

    async def went_back(self, step: str) -> None:
        """Back at `step`: its answer is forgotten so it can be given again."""
        await forget_answer(self.row, step)
        await self.reask()


class Dialogs:
    """The dialogs of the modules switched on, by kind: where a person's open question goes."""

    def __init__(self, kinds: Mapping[str, type[Dialog[Any]]]) -> None:
        self._kinds = dict(kinds)

    async def answer(self, ctx: Context) -> bool:
        """The sender's open question takes the message (False: there is none, or it passes)."""
        row = await ctx.dialog()
        if row is None:
            return False
        kind = self._kinds.get(row.kind)
        if kind is None:           # a dialog of a module since switched off
            await close_dialog(row.user_id)
            return False
        subject = await kind.load(ctx, row)
        if subject is None:
            await kind.gone(ctx, row)
            return True
        return await kind(ctx, row, subject).receive()

    async def expire(self, ctx: Context) -> bool:
        """An unanswered question expired: its dialog says what happens, unless the person
        answered meanwhile (a newer question is open)."""
        row = await ctx.dialog()
        if row is None or row.asked_at.isoformat() != ctx.event.event_key:
            return True
        kind = self._kinds.get(row.kind)
        if kind is None:
            await close_dialog(row.user_id)
        else:
            await kind.expire(ctx, row)
        return True
