"""Signing in to the dashboard with the platform's own login: WeCom's 网页授权 (inside the app)
or QR login (on a PC), and DingTalk's OAuth2 (bot/channels/wecom_login.py, dingtalk_login.py).

`/dashboard/login/{platform}` hands the browser to the platform with a fresh `state`, kept in
the database (single-use, minutes long) and in a cookie of this browser: a callback is taken
only with the state this browser was given (so nobody can sign another's browser in as
themselves) and only once. `/dashboard/auth/{platform}` is where the platform sends the browser
back with a code; the code names a member of the organisation, who must be an active person
of our roster. Then the session cookie, and on to where they were going (`next`, a path of
the dashboard only)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
from aiohttp import web

from bot.channels import CodeRefused, NotMember, PlatformUnavailable, dingtalk_login, wecom_login
from bot.channels.dingtalk_api import DingTalkApi, DingTalkError
from bot.channels.wecom_api import WeComApi, WeComError
from bot.clock import Clock
from bot.settings import Settings
from bot.web.dashboard.gate import HOME, Gate, safe_next, secure
from bot.web.dashboard.render import Renderer
from models.dashboard.accounts import new_state, open_session, person_of, take_state

log = logging.getLogger(__name__)

AUTH = f"{HOME}/auth"
STATE_COOKIE = "sb_oauth_state"
NEXT_COOKIE = "sb_oauth_next"
STATE_LASTS = timedelta(minutes=10)      # from the sign-in page to the platform and back


@dataclass(frozen=True)
class Platform:
    """One platform's web login: its name in pages, the query parameter its code comes back
    in, where to send the browser, and who a code names (raising CodeRefused, NotMember, or
    the platform's errors)."""

    label: str
    code_param: str
    enabled: bool
    authorize: Callable[[web.Request, str, str], str]          # request, redirect_uri, state
    member: Callable[[aiohttp.ClientSession, str], Awaitable[str]]


PLATFORM_ERRORS = (WeComError, DingTalkError, PlatformUnavailable)


class OAuth:
    def __init__(self, settings: Settings, clock: Clock, gate: Gate, render: Renderer,
                 instance: str) -> None:
        self.settings = settings
        self.clock = clock
        self.gate = gate
        self.render = render
        wecom, dingtalk = settings.wecom, settings.dingtalk
        self.platforms = {
            "wecom": Platform(
                "企业微信", "code", wecom.enabled,
                lambda request, uri, state: wecom_login.authorize_url(
                    wecom, uri, state,
                    app=wecom_login.in_app(request.headers.get("User-Agent", ""))),
                lambda session, code: wecom_login.member_of_code(
                    WeComApi(wecom, session, instance, clock), code)),
            "dingtalk": Platform(
                "钉钉", "authCode", dingtalk.enabled,
                lambda request, uri, state: dingtalk_login.authorize_url(dingtalk, uri, state),
                lambda session, code: dingtalk_login.member_of_code(
                    DingTalkApi(dingtalk, session, instance, clock), dingtalk, code)),
        }

    def routes(self) -> list[web.AbstractRouteDef]:
        return [web.get(f"{HOME}/login/{{platform}}", self.start),
                web.get(f"{AUTH}/{{platform}}", self.back)]

    async def start(self, request: web.Request) -> web.StreamResponse:
        """To the platform's login, with a state for this browser."""
        name = request.match_info["platform"]
        platform = self.platforms.get(name)
        if platform is None or not platform.enabled:
            return self._refused(404, "该登录方式未启用",
                                 "本厂未启用这种登录方式，请用登录页上的其他方式。")
        state = await new_state(name, self.clock())
        redirect_uri = f"{self._public_url(request)}{AUTH}/{name}"
        response = web.HTTPFound(platform.authorize(request, redirect_uri, state))
        for cookie, value in ((STATE_COOKIE, state),
                              (NEXT_COOKIE, safe_next(request.query.get("next", "")))):
            # Lax: the platform's redirect back is a top-level GET from another site.
            response.set_cookie(cookie, value, httponly=True, samesite="Lax",
                                secure=secure(request), path=AUTH,
                                max_age=int(STATE_LASTS.total_seconds()))
        raise response

    async def back(self, request: web.Request) -> web.StreamResponse:
        """The platform sends the browser back: the state, then the code, then the roster."""
        name = request.match_info["platform"]
        platform = self.platforms.get(name)
        if platform is None:
            raise web.HTTPNotFound()
        state, kept = request.query.get("state", ""), request.cookies.get(STATE_COOKIE, "")
        now = self.clock()
        if not (state and kept and secrets.compare_digest(state, kept)
                and await take_state(state, name, now, STATE_LASTS)):
            log.warning("dashboard sign-in refused: unknown, used or foreign state",
                        extra={"platform": name})
            return self._refused(400, "登录请求已失效",
                                 "这个登录请求无效、已过期或已经用过，请重新登录。")
        code = request.query.get(platform.code_param, "")
        if not code:
            return self._refused(400, "未完成授权",
                                 f"{platform.label}没有完成授权，请重新登录。")
        try:
            async with aiohttp.ClientSession() as session:
                uid = await platform.member(session, code)
        except CodeRefused as exc:
            log.warning("dashboard sign-in refused: %s", exc, extra={"platform": name})
            return self._refused(400, "登录凭证无效",
                                 "登录凭证无效或已经用过，请重新登录。")
        except NotMember:
            return self._stranger(request, name, "")
        except PLATFORM_ERRORS as exc:
            # The exception names the call and the platform's code, never the URL or a token.
            log.warning("dashboard sign-in failed: %s %s", type(exc).__name__, exc,
                        extra={"platform": name})
            return self._refused(502, f"暂时无法连接{platform.label}",
                                 f"{platform.label}暂时没有回应，请稍后重新登录。")
        person = await person_of(name, uid)
        if person is None:
            return self._stranger(request, name, uid)
        opened = await open_session(now, self.gate.lasts, user_id=person.id)
        log.info("dashboard sign-in", extra={"platform": name, "user": person.id})
        try:
            self.gate.signed_in(request, opened.token, request.cookies.get(NEXT_COOKIE, HOME))
        except web.HTTPFound as response:       # the redirect, raised: the state is spent
            for cookie in (STATE_COOKIE, NEXT_COOKIE):
                response.del_cookie(cookie, path=AUTH)
            raise

    def _public_url(self, request: web.Request) -> str:
        """Where the platform sends the browser back: the configured address, else the one
        this request came to."""
        configured = self.settings.dashboard.public_url.rstrip("/")
        if configured:
            return configured
        return f"{'https' if secure(request) else 'http'}://{request.host}"

    def _stranger(self, request: web.Request, platform: str, uid: str) -> web.Response:
        log.warning("dashboard sign-in refused: not an active person of the roster",
                    extra={"platform": platform, "user": uid})
        return self._refused(403, "无法登录看板",
                             "您不在本厂名册中，或账号已停用，无法查看看板。"
                             "如有疑问，请联系安全管理员。")

    def _refused(self, status: int, title: str, text: str) -> web.Response:
        response = self.render.page("refused.html", status=status, title=title, text=text)
        for cookie in (STATE_COOKIE, NEXT_COOKIE):
            response.del_cookie(cookie, path=AUTH)
        return response
