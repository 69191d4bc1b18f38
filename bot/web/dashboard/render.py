"""The dashboard's pages: Jinja2 templates, autoescaped (a ticket's description shows as typed,
never as markup), with the plant's time zone for every time shown."""

from __future__ import annotations

import json as json_module
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, select_autoescape

HERE = Path(__file__).parent


class Renderer:
    def __init__(self, tz: ZoneInfo) -> None:
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"),
                               autoescape=select_autoescape(default=True),
                               trim_blocks=True, lstrip_blocks=True)
        self.env.filters["when"] = lambda moment: _when(moment, tz)
        self.env.filters["share"] = lambda value: "—" if value is None else f"{value:.0%}"

    def page(self, template: str, *, status: int = 200, **context: Any) -> web.Response:
        body = self.env.get_template(template).render(**context)
        return web.Response(text=body, status=status, content_type="text/html",
                            charset="utf-8", headers=HEADERS)


# Pages are never framed by another site, and nothing on them runs from elsewhere.
HEADERS = {"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "same-origin",
           "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                                      "style-src 'self'; script-src 'self'; "
                                      "frame-ancestors 'none'"}


def json(body: Any, *, status: int = 200) -> web.Response:
    """The pages' own JSON: Chinese as it is, times in ISO 8601."""
    return web.json_response(body, status=status, dumps=_dumps)


def _dumps(value: Any) -> str:
    return json_module.dumps(value, ensure_ascii=False, default=_plain)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _when(moment: datetime | None, tz: ZoneInfo) -> str:
    return "—" if moment is None else f"{moment.astimezone(tz):%Y-%m-%d %H:%M}"
