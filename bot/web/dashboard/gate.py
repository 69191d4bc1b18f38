"""Who is at the door: the session cookie read on every page and call, the viewer it makes, and
the sign-in and sign-out of local administrators. A page without a session redirects to the
sign-in; a call of the pages' own JSON answers 401. A form that changes something carries the
session's CSRF token. The cookie is HttpOnly and SameSite=Lax, and Secure when the request came
over HTTPS (directly or through a proxy that says so)."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import NoReturn
from urllib.parse import quote

from aiohttp import web

from bot.clock import Clock
from bot.settings import Settings
from bot.web.dashboard.render import Renderer
from models.dashboard.access import Viewer, viewer_of
from models.dashboard.accounts import (
    Signed,
    check_admin,
    end_session,
    open_session,
    session_of,
)

COOKIE = "sb_session"
LOGIN_COOKIE = "sb_login"       # the sign-in form's own CSRF token (double submit)
HOME = "/dashboard"


@dataclass(frozen=True)
class Visit:
    """A signed-in request: who, and what they may see."""

    signed: Signed
    viewer: Viewer


Page = Callable[[web.Request, Visit], Awaitable[web.StreamResponse]]


class Gate:
    def __init__(self, settings: Settings, clock: Clock, render: Renderer) -> None:
        self.settings = settings
        self.clock = clock
        self.render = render
        self.lasts = timedelta(hours=settings.dashboard.session_hours)

    async def visit(self, request: web.Request) -> Visit | None:
        signed = await session_of(request.cookies.get(COOKIE, ""), self.clock())
        if signed is None:
            return None
        return Visit(signed, await viewer_of(signed.user, signed.admin))

    def page(self, handler: Page) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """A page: without a live session, the sign-in (then back here)."""
        async def guarded(request: web.Request) -> web.StreamResponse:
            visit = await self.visit(request)
            if visit is None:
                raise web.HTTPFound(f"{HOME}/login?next={quote(request.path_qs, safe='')}")
            return await handler(request, visit)

        return guarded

    def call(self, handler: Page) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """The pages' JSON and files: without a live session, 401."""
        async def guarded(request: web.Request) -> web.StreamResponse:
            visit = await self.visit(request)
            if visit is None:
                return web.json_response({"error": "not signed in"}, status=401)
            return await handler(request, visit)

        return guarded

    def form(self, handler: Page) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """A POST from a page: signed in, and the form's CSRF token the session's."""
        async def guarded(request: web.Request) -> web.StreamResponse:
            visit = await self.visit(request)
            if visit is None:
                return web.json_response({"error": "not signed in"}, status=401)
            sent = (await request.post()).get("csrf", "")
            if not isinstance(sent, str) or not secrets.compare_digest(sent, visit.signed.csrf):
                return web.json_response({"error": "missing or wrong CSRF token"}, status=403)
            return await handler(request, visit)

        return guarded

    # --- signing in and out --------------------------------------------------------------------

    async def login_page(self, request: web.Request) -> web.StreamResponse:
        token = secrets.token_urlsafe(16)
        response = self.render.page("login.html", title="登录",
                                    next=safe_next(request.query.get("next", "")),
                                    csrf=token, error=request.query.get("error", ""),
                                    wecom=self.settings.wecom.enabled,
                                    dingtalk=self.settings.dingtalk.enabled)
        response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="Strict",
                            secure=secure(request), path=f"{HOME}/login", max_age=1800)
        return response

    async def login(self, request: web.Request) -> web.StreamResponse:
        """A local administrator's name and password."""
        form = await request.post()
        sent, kept = str(form.get("csrf", "")), request.cookies.get(LOGIN_COOKIE, "")
        target = safe_next(str(form.get("next", "")))
        if not kept or not secrets.compare_digest(sent, kept):
            return web.json_response({"error": "missing or wrong CSRF token"}, status=403)
        name, password = str(form.get("name", "")).strip(), str(form.get("password", ""))
        if not name or not await check_admin(name, password):
            raise web.HTTPFound(f"{HOME}/login?error=1&next={quote(target, safe='')}")
        opened = await open_session(self.clock(), self.lasts, admin=name)
        self.signed_in(request, opened.token, target)

    def signed_in(self, request: web.Request, token: str, target: str) -> NoReturn:
        """To `target` with the session's cookie (raised: aiohttp's redirect is raised)."""
        response = web.HTTPFound(safe_next(target))
        response.set_cookie(COOKIE, token, httponly=True, samesite="Lax",
                            secure=secure(request), path="/",
                            max_age=int(self.lasts.total_seconds()))
        response.del_cookie(LOGIN_COOKIE, path=f"{HOME}/login")
        raise response

    async def logout(self, request: web.Request, visit: Visit) -> web.StreamResponse:
        await end_session(visit.signed.session_id, self.clock())
        response = web.HTTPFound(f"{HOME}/login")
        response.del_cookie(COOKIE, path="/")
        raise response


def secure(request: web.Request) -> bool:
    return request.secure or request.headers.get("X-Forwarded-Proto", "") == "https"


def safe_next(target: str) -> str:
    """Where to go after signing in: a path of the dashboard only (never another site)."""
    return target if target.startswith(f"{HOME}") and "//" not in target else HOME
