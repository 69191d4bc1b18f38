"""Structured logs: one JSON object a line, with the ids a reader needs to find the record."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry |= {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log repeats every callback's query string: signatures, no secrets, but
    # noise at 500 callbacks a second. Keep it at warning.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # tortoise logs every query with its parameters at DEBUG, the access token among them.
    logging.getLogger("tortoise").setLevel(max(root.level, logging.INFO))
    # While the database is away, asyncpg's pool logs a traceback every second or two for the
    # connections it keeps ready; the supervised loops already say so once (bot/supervision.py).
    logging.getLogger("asyncpg.pool").setLevel(max(root.level, logging.ERROR))
    # APScheduler says "Running job" and "executed successfully" at every tick (30 s): an idle
    # service's log would be nothing else. A tick that did something says so itself
    # (scheduler/jobs.py); APScheduler's warnings (a missed run) still show.
    logging.getLogger("apscheduler").setLevel(max(root.level, logging.WARNING))
    # botocore and aiobotocore (the media bucket) log each request's headers at DEBUG, the
    # access key id among them.
    for name in ("botocore", "aiobotocore"):
        logging.getLogger(name).setLevel(max(root.level, logging.INFO))
