"""The platforms' web login pages, played for the dashboard's sign-in (WeCom's 网页授权 and QR
login, DingTalk's OAuth2 授权页), written once for both simulators.

A real login page asks the person (a scan, a tap on 同意); here a test says who is at the
browser first, `sim.web_login.signs_in("sunli")`, and the page sends the browser straight back
to `redirect_uri` with a fresh code for that person: single-use, and expired after five minutes
of the simulator's clock (WeCom: "code只能使用一次，5分钟未被使用自动过期"; DingTalk's authCode is
taken to live as long [unknown]). Each platform's module checks its own query parameters and
serves the call that exchanges the code.
"""

from __future__ import annotations

import secrets
from typing import NoReturn

from aiohttp import web
from yarl import URL

from simulator.base import Clock

CODE_TTL = 300.0


class WebLogin:
    def __init__(self, clock: Clock) -> None:
        self.person: str | None = None    # who is at the browser; None: nobody signs in
        self.pages: list[str] = []        # the login pages opened, by path, in order
        self.codes_issued = 0
        self._clock = clock
        self._codes: dict[str, tuple[str, float]] = {}

    def signs_in(self, person: str | None) -> None:
        """The next login pages are answered for `person` (None: nobody is there)."""
        self.person = person

    def back_to(self, request: web.Request, code_param: str) -> NoReturn:
        """The login page: back to `redirect_uri` with a code for the person at the browser."""
        self.pages.append(request.path)
        redirect_uri, state = request.query.get("redirect_uri", ""), request.query.get("state")
        if not redirect_uri.startswith(("http://", "https://")) or state is None:
            raise web.HTTPBadRequest(text="redirect_uri and state are required")
        if self.person is None:
            raise web.HTTPBadRequest(text="nobody is signing in: call web_login.signs_in(user)")
        code = secrets.token_urlsafe(24)
        self._codes[code] = (self.person, self._clock() + CODE_TTL)
        self.codes_issued += 1
        raise web.HTTPFound(str(URL(redirect_uri).update_query({code_param: code,
                                                                 "state": state})))

    def take(self, code: str) -> str | None:
        """The person a code names, once, while it lasts."""
        person, until = self._codes.pop(code, (None, 0.0))
        return person if person is not None and self._clock() < until else None
