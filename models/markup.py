"""People's text inside markdown: marked where a message is written, escaped where a channel
renders it; and inbound text made safe to store.

A `Markdown` message mixes the service's own markup (bold titles, quoted lines) with text people
typed: descriptions, evidence notes, reasons, 治理方案 fields, audit notes. That text must show as
typed: a description `[点我](http://evil.example)` must not become a live link in the owner's
chat or in a ticket's details. The code that writes the content knows which parts people typed
and wraps them in `literal()`; the channel that renders the message knows its markdown and calls
`render_markdown()`, which replaces each marked run with its escaped form. So escaping happens in
one place per channel, and a handler never learns a platform's syntax.
"""

from __future__ import annotations

import re
from collections.abc import Callable

OPEN, CLOSE = "\ue000", "\ue001"       # private-use characters: no keyboard types them
REPLACEMENT = "\ufffd"
ELLIPSIS = "…"

# WeCom's markdown subset: ** bold, `code`, [text](url), <font color>, and > quote / # heading
# at a line's start. Full-width forms of these characters read the same to a Chinese reader (they
# are what a Chinese keyboard types anyway) and no markdown renderer takes them for syntax.
# WeCom documents no escape of its own: a backslash escape is not promised to work, and an HTML
# entity may show as typed. `\` itself is replaced, so a trailing backslash cannot escape the
# markup that follows the run.
_FULL_WIDTH = str.maketrans({"*": "＊", "`": "｀", "[": "［", "]": "］", "<": "＜", ">": "＞",
                             "#": "＃", "\\": "＼"})
_RUN = re.compile(f"{OPEN}([^{CLOSE}]*)(?:{CLOSE}|\\Z)")
_UNSTORABLE = re.compile(f"[\x00\ud800-\udfff{OPEN}{CLOSE}]")

Escape = Callable[[str], str]


def clean_text(text: str) -> str:
    """Text as it may be stored and marked: NUL (PostgreSQL refuses it in text and JSON), lone
    surrogates (not encodable as UTF-8) and our two markers become U+FFFD."""
    return _UNSTORABLE.sub(REPLACEMENT, text)


def literal(text: str) -> str:
    """Mark text that people typed, inside markdown content, so it shows as typed.

    Apply it to the whole text after any cutting (`_short`), so the pair stays together; marks
    inside are dropped, so marking twice is harmless."""
    return OPEN + text.replace(OPEN, "").replace(CLOSE, "") + CLOSE


def escape_markdown(text: str) -> str:
    """People's text shown literally in WeCom's markdown (and the web chat, which renders the
    same subset): markup characters as their full-width forms, and each line break a space, so
    the text can neither start a line (a quote, a heading) nor end the template's line early."""
    return " ".join(text.translate(_FULL_WIDTH).splitlines())


def render_markdown(content: str, *, room: int | None, escape: Escape = escape_markdown) -> str:
    """The content as a channel sends it: each marked run escaped, the markers gone.

    Escaping can lengthen a run (a full-width form takes 3 bytes in UTF-8, `*` one), while the
    content was cut to the platform's `room` (`models.outgoing.fit`) counting the marked text.
    Then the longest runs of people's text are shortened, with an ellipsis, until it fits
    again: every line the writer kept stays (see `_shorten`). Nothing is cut below the size of
    the content without its markers: content too long before escaping is the writer's to fit.
    A marker left unpaired by a cut escapes the rest of the content."""
    pieces: list[str] = []
    runs: list[int] = []            # indexes in `pieces` of people's text
    plain_bytes = 0                 # the content without markers, before escaping
    at = 0
    for run in _RUN.finditer(content):
        pieces.append(content[at:run.start()].replace(CLOSE, ""))
        text = run.group(1).replace(OPEN, "")
        plain_bytes += len(pieces[-1].encode()) + len(text.encode())
        runs.append(len(pieces))
        pieces.append(escape(text))
        at = run.end()
    pieces.append(content[at:].replace(CLOSE, ""))
    plain_bytes += len(pieces[-1].encode())
    if room is not None:
        excess = sum(len(p.encode()) for p in pieces) - max(room, plain_bytes)
        if excess > 0:
            _shorten(pieces, runs, excess)
    return "".join(pieces)


def _shorten(pieces: list[str], runs: list[int], excess: int) -> None:
    """Free `excess` bytes from the runs of people's text: every run longer than one common
    length is cut to it (whole characters, then an ellipsis), the longest such length that
    frees enough. Short texts (a reason, a name) stay whole; long ones give way evenly."""
    sizes = {i: len(pieces[i].encode()) for i in runs}
    mark = len(ELLIPSIS.encode())

    def freed(cap: int) -> int:
        return sum(size - cap - mark for size in sizes.values() if size > cap + mark)

    low, high = 0, max(sizes.values(), default=0)   # freed(high) == 0, freed(low) is the most
    while low < high:
        middle = (low + high + 1) // 2
        if freed(middle) >= excess:
            low = middle
        else:
            high = middle - 1
    for i, size in sizes.items():
        if size > low + mark:
            pieces[i] = _cut(pieces[i], low) + ELLIPSIS


def _cut(text: str, room: int) -> str:
    """The longest start of `text` that takes at most `room` bytes."""
    kept = 0
    for n, char in enumerate(text):
        kept += len(char.encode())
        if kept > room:
            return text[:n]
    return text
