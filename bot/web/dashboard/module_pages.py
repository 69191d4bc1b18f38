"""placeholder"""
from __future__ import annotations

from aiohttp import web

from bot.web.dashboard import Dashboard


def routes(d: Dashboard) -> list[web.AbstractRouteDef]:
    return []
