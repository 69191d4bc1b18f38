"""The JSON API at /api/v1 for the plant's other systems: tickets (the ledger's filter), one
ticket with its record, the areas with their risk, and the emergency activations, paged by an
opaque cursor. A call bears `Authorization: Bearer <token>` (`safetybot api-token create`); a
token sees the whole plant, and reads only unless it was made with `--write`. The OpenAPI
document (bot/web/openapi.py) is served without a token."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from bot.clock import Clock
from bot.settings import Settings
from bot.web.openapi import document
from models.area_counts import open_counts
from models.audit import history
from models.catalog import Catalog
from models.dashboard.access import Scope, Viewer, visible_tickets
from models.dashboard.activations import (
    activations_before,
    parse_activation_filter,
    responders_of,
    seconds_to_answer,
)
from models.dashboard.ledger import MAX_PER_PAGE, PER_PAGE, FilterError, parse_filter, whole
from models.dashboard.ledger import tickets_before as ledger_before
from models.dashboard.tokens import ApiToken, token_of
from models.emergency import Activation
from models.hazard import ACTION_WORDS, ACTIVE, LABELS, Ticket
from models.org import area_names, every_area

API = "/api/v1"
READS = frozenset({"GET", "HEAD", "OPTIONS"})
PAGING = ("cursor", "limit")


@dataclass(frozen=True)
class Caller:
    """Who called: the token, and what it may see (the whole plant)."""

    token: ApiToken
    viewer: Viewer


Call = Callable[[web.Request, Caller], Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def routes(settings: Settings, clock: Clock, catalog: Catalog) -> list[web.AbstractRouteDef]:
    api = Api(settings, clock, catalog)
    return [web.get(f"{API}/openapi.json", api.openapi),
            web.route("*", f"{API}/tickets", api.door(GET=api.tickets)),
            web.route("*", f"{API}/tickets/{{id}}", api.door(GET=api.ticket)),
            web.route("*", f"{API}/areas", api.door(GET=api.areas)),
            web.route("*", f"{API}/activations", api.door(GET=api.activations))]


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def answer(body: Any, status: int = 200, headers: Mapping[str, str] | None = None
           ) -> web.Response:
    return web.json_response(body, status=status, headers=headers, dumps=_dumps)


def problem(status: int, error: str, **more: str) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="safetybot"'} if status == 401 else None
    return answer({"error": error, **more}, status, headers)


def cursor_of(kind: str, last_id: int) -> str:
    """Opaque to callers: which list it pages, and the last id given."""
    return base64.urlsafe_b64encode(f"{kind}:{last_id}".encode()).decode().rstrip("=")


def read_cursor(params: Mapping[str, str], kind: str) -> int | None:
    value = params.get("cursor", "")
    if not value:
        return None
    try:
        text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    found, _, last = text.partition(":")
    if found != kind or not last.isdigit():
        raise FilterError("cursor", "is not a cursor this list gave; start again without one")
    return int(last)


class Api:
    def __init__(self, settings: Settings, clock: Clock, catalog: Catalog) -> None:
        self.settings = settings
        self.clock = clock
        self.catalog = catalog

    # --- the door: every call but the document's ----------------------------------------------

    def door(self, **methods: Call) -> Handler:
        """A path's methods behind the token: none or a dead one 401; a method that changes
        something with a token that reads only 403 (the one place that decides it); a bad
        query 400 naming its field."""
        async def guarded(request: web.Request) -> web.StreamResponse:
            token = await self._bearer(request)
            if token is None:
                return problem(401, "a live API token is needed: Authorization: Bearer <token>")
            if request.method not in READS and not token.writes:
                return problem(403, "this token reads only")
            call = methods.get("GET" if request.method == "HEAD" else request.method)
            if call is None:
                return answer({"error": f"{request.method} is not allowed here"}, 405,
                              {"Allow": ", ".join(methods)})
            viewer = Viewer(f"token:{token.id}", token.name, Scope.PLANT)
            try:
                return await call(request, Caller(token, viewer))
            except FilterError as wrong:
                return problem(400, str(wrong), field=wrong.field)

        return guarded

    async def _bearer(self, request: web.Request) -> ApiToken | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return await token_of(token.strip(), self.clock())

    async def openapi(self, request: web.Request) -> web.StreamResponse:
        return answer(document())

    # --- tickets -------------------------------------------------------------------------------

    async def tickets(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        params = request.query
        f = parse_filter(params, PAGING)
        limit = whole(params, "limit", PER_PAGE, 1, MAX_PER_PAGE)
        before = read_cursor(params, "t")
        rows = await ledger_before(caller.viewer, f, self.clock(), self.settings.tz, before,
                                   limit + 1)
        page = rows[:limit]
        return answer({"items": await self._tickets(page),
                       "next_cursor": cursor_of("t", page[-1].id) if len(rows) > limit
                       else None})

    async def ticket(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        wanted = request.match_info["id"]
        t = await visible_tickets(caller.viewer).get_or_none(id=int(wanted)) \
            if wanted.isdigit() and len(wanted) < 19 else None
        if t is None:
            return problem(404, f"no ticket {wanted[:20]}")
        body = (await self._tickets([t]))[0]
        body["photos"] = {"before": list(t.photos), "after": list(t.evidence)}
        body["checklist"] = dict(t.checklist)
        body["plan"] = dict(t.plan)
        body["history"] = [{"at": self._when(e.at), "actor": e.actor, "action": e.action,
                            "words": ACTION_WORDS.get(e.action, ""), "from": e.from_state,
                            "to": e.to_state, "note": e.note}
                           for e in await history("ticket", str(t.id))]
        return answer(body)

    async def _tickets(self, tickets: list[Ticket]) -> list[dict[str, Any]]:
        areas = await area_names({t.area_id for t in tickets if t.area_id})
        now = self.clock()
        return [{"id": t.id, "number": t.number, "status": t.status.value,
                 "status_label": LABELS[t.status],
                 "area": {"code": t.area_id, "name": areas.get(t.area_id, "")}
                 if t.area_id else None,
                 "category": {"code": t.category, "name": self.catalog.name_of(t.category)}
                 if t.category else None,
                 "grade": t.grade.value, "defect_type": t.defect_type.value,
                 "description": t.description, "reporter": t.reporter_id,
                 "owner": t.owner_id, "reviewer": t.reviewer_id,
                 "created_at": self._when(t.created_at), "deadline": self._when(t.deadline),
                 "closed_at": self._when(t.closed_at),
                 "overdue": bool(t.status in ACTIVE and t.deadline and t.deadline < now),
                 "reports": t.reports}
                for t in tickets]

    # --- areas ---------------------------------------------------------------------------------

    async def areas(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        active, overdue = await open_counts(self.clock())
        return answer({"items": [
            {"code": a.code, "name": a.name, "risk_color": a.risk_color.value,
             "risk_status": a.risk_status or None, "risk_reason": a.risk_reason,
             "risk_status_at": self._when(a.risk_status_at),
             "open_tickets": active.get(a.code, 0), "overdue_tickets": overdue.get(a.code, 0)}
            for a in await every_area()]})

    # --- emergency activations -----------------------------------------------------------------

    async def activations(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        params = request.query
        f = parse_activation_filter(params, PAGING)
        limit = whole(params, "limit", PER_PAGE, 1, MAX_PER_PAGE)
        before = read_cursor(params, "a")
        rows = await activations_before(f, self.settings.tz, before, limit + 1)
        page = rows[:limit]
        return answer({"items": await self._activations(page),
                       "next_cursor": cursor_of("a", page[-1].id) if len(rows) > limit
                       else None})

    async def _activations(self, rows: list[Activation]) -> list[dict[str, Any]]:
        called = await responders_of([a.id for a in rows])
        areas = await area_names({a.area_id for a in rows if a.area_id})
        items = []
        for a in rows:
            plan = a.plan
            items.append({
                "id": a.id, "label": a.label,
                "plan": {"code": plan.code, "name": plan.name, "kind": plan.kind.value}
                if plan else None,
                "level": a.level or None,
                "area": {"code": a.area_id, "name": areas.get(a.area_id, "")}
                if a.area_id else None,
                "drill": a.drill, "status": a.status.value, "raised_by": a.raised_by,
                "commander": a.commander or None, "created_at": self._when(a.created_at),
                "activated_at": self._when(a.activated_at),
                "closed_at": self._when(a.closed_at),
                "responders": [{"user": r.user_id, "deputy_for": r.deputy_for or None,
                                "answer": r.answer or None,
                                "notified_at": self._when(r.notified_at),
                                "answered_at": self._when(r.answered_at),
                                "seconds_to_answer": seconds_to_answer(a, r), "late": r.late}
                               for r in called[a.id]]})
        return items

    def _when(self, moment: datetime | None) -> str | None:
        """ISO 8601 in the plant's time zone, with its offset."""
        return moment.astimezone(self.settings.tz).isoformat() if moment else None
