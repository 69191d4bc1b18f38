"""What a module brings to the bot, by the moment of routing it answers at; `handlers/__init__.py`
puts the modules switched on in order."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from handlers.dialog import Dialog
from handlers.router import Router


@dataclass(frozen=True)
class Module:
    name: str                  # its key in the `[modules]` setting
    # The module's own queued next steps (Context.follow_up), run even for people who left.
    follow_ups: Router = field(default_factory=Router)
    clicks: Router = field(default_factory=Router)      # its cards' buttons
    # Typed commands answered even in the middle of another module's question.
    commands: Router = field(default_factory=Router)
    # What it claims before the open question among events other modules take too (a photo
    # that may be a label's, text shaped like its codes); its handlers decline the rest, and
    # nothing is claimed when it is switched off.
    claims: Router = field(default_factory=Router)
    dialogs: tuple[type[Dialog[Any]], ...] = ()
    # What starts its work when no question is open: a photo, a trigger word, a menu key.
    starts: Router = field(default_factory=Router)
    # What it recognises in free text nothing else took (never claimed when switched off).
    guesses: Router = field(default_factory=Router)
    help: tuple[str, ...] = ()  # its lines of 帮助
