"""Where the service's CPU goes, from a py-spy folded-stack file (`callback_bench.py --py-spy`).

A flame graph answers the same question, but a table fits in an issue comment: samples are put
into the part of the service they were taken in (the callback, the inbox worker, the outbox
dispatcher, aiohttp and asyncio themselves), and the callback's share is split into its steps.

    .venv/bin/python benchmarks/profile_summary.py benchmarks/out/<stamp>-service-round1.folded
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

# First match wins: a callback sample that also shows asyncpg frames counts as the callback's.
PARTS: Sequence[tuple[str, Sequence[str]]] = (
    ("callback (POST /wecom/callback)", ("WeComCallback.receive",)),
    ("inbox worker", ("(bot/inbox.py:", "inbox_claim", "inbox_complete")),
    ("outbox dispatcher", ("(bot/dispatcher.py:",)),
    ("claim loop (shared)", ("(bot/claim_loop.py:",)),
    ("ops endpoints", ("readyz", "healthz", "prometheus")),
    ("aiohttp request/response", ("RequestHandler.", "web_protocol", "http_parser",
                                  "StreamResponse", "web_response")),
    ("asyncpg: connection release/reset, protocol", ("asyncpg/",)),
    ("event loop", ("asyncio/",)),
)
CALLBACK_STEPS: Sequence[tuple[str, Sequence[str]]] = (
    ("decrypt + verify (open_message)", ("WeComCrypto.open_message",)),
    ("parse_event (the message's XML)", ("parse_event",)),
    ("inbox put: INSERT … ON CONFLICT", ("inbox_put", "InboxWorker.put")),
    ("metrics", ("prometheus_client",)),
    ("read body", ("_read_limited",)),
)


def samples(lines: Iterable[str]) -> Iterable[tuple[list[str], int]]:
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        if stack and count.isdigit():
            yield stack.split(";"), int(count)


def classify(frames: Sequence[str], table: Sequence[tuple[str, Sequence[str]]]) -> str | None:
    for name, needles in table:
        if any(needle in frame for frame in frames for needle in needles):
            return name
    return None


def summarize(path: Path) -> list[str]:
    parts: Counter[str] = Counter()
    steps: Counter[str] = Counter()
    with path.open(encoding="utf-8", errors="replace") as fh:
        for frames, count in samples(fh):
            part = classify(frames, PARTS) or "other"
            parts[part] += count
            if part.startswith("callback"):
                steps[classify(frames, CALLBACK_STEPS) or "rest of the handler"] += count
    total = sum(parts.values()) or 1
    out = [f"{path.name}: {total} samples (non-idle)", "", "| part | share |", "|---|---:|"]
    out += [f"| {name} | {n / total:.0%} |" for name, n in parts.most_common()]
    callback = sum(steps.values()) or 1
    out += ["", "| callback step | share of callback |", "|---|---:|"]
    out += [f"| {name} | {n / callback:.0%} |" for name, n in steps.most_common()]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", type=Path, nargs="+")
    args = parser.parse_args(argv)
    for path in args.files:
        print("\n".join(summarize(path)), end="\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
