"""DingTalk's web login (钉钉登录, OAuth2 授权码模式), for the dashboard's sign-in.

open.dingtalk.com, 获取登录用户的访问凭证 (and open-dingtalk/developerpedia, 浏览器内获取用户
委托的访问凭证):

1. The browser goes to `{login_base}/oauth2/auth?redirect_uri=ENC&response_type=code
   &client_id=ID&scope=openid&state=STATE&prompt=consent`; the redirect URL must be the app's
   (登录与分享 回调域名). DingTalk sends it back to `redirect_uri?authCode=CODE&state=STATE`, or
   `?error=…&state=STATE` when the person declines.
2. `POST {api_base}/v1.0/oauth2/userAccessToken {clientId, clientSecret, code,
   grantType: "authorization_code"}` → `{accessToken, refreshToken, expireIn}`: the person's own
   token (a used or unknown code is refused with HTTP 400).
3. `GET {api_base}/v1.0/contact/users/me` with that token in `x-acs-dingtalk-access-token` →
   `{nick, unionId, openId, …}`: who they are across DingTalk, not yet in this organisation.
4. `POST {oapi_base}/topapi/user/getbyunionid?access_token=APP_TOKEN {unionid}` →
   `{"result": {"contact_type": 0, "userid": "…"}}`: their userId (staffId) here;
   contact_type 1 is an external contact, and errcode 60121 (找不到该用户) someone not in the
   organisation.
"""

from __future__ import annotations

from urllib.parse import urlencode

from bot.channels import CodeRefused, NotMember
from bot.channels.dingtalk_api import DingTalkApi, DingTalkError
from bot.settings import DingTalkSettings

TOKEN_HEADER = "x-acs-dingtalk-access-token"
NOT_FOUND = "60121"               # 找不到该用户
BAD_CREDENTIALS = "invalidClientIdOrSecret"
INTERNAL = 0                      # contact_type: 0 a member, 1 an external contact


def authorize_url(settings: DingTalkSettings, redirect_uri: str, state: str) -> str:
    query = urlencode({"redirect_uri": redirect_uri, "response_type": "code",
                       "client_id": settings.client_id, "scope": "openid", "state": state,
                       "prompt": "consent"})
    return f"{settings.login_base.rstrip('/')}/oauth2/auth?{query}"


async def member_of_code(api: DingTalkApi, settings: DingTalkSettings, code: str) -> str:
    """The member's userId the authCode names. Raises CodeRefused, NotMember, or the API's own
    errors (DingTalkError, PlatformUnavailable) for the platform failing."""
    try:
        token = await api.unsigned("POST", "oauth2/userAccessToken", json={
            "clientId": settings.client_id, "clientSecret": settings.client_secret,
            "code": code, "grantType": "authorization_code"})
    except DingTalkError as exc:
        if exc.status == 400 and exc.code != BAD_CREDENTIALS:
            raise CodeRefused(f"dingtalk {exc.status} {exc.code}") from None
        raise
    me = await api.unsigned("GET", "contact/users/me",
                            headers={TOKEN_HEADER: str(token["accessToken"])})
    try:
        found = await api.legacy("topapi/user/getbyunionid", json={"unionid": me["unionId"]})
    except DingTalkError as exc:
        if exc.code == NOT_FOUND:
            raise NotMember("the unionId is not in the organisation") from None
        raise
    result = found.get("result") or {}
    if result.get("contact_type", INTERNAL) != INTERNAL or not result.get("userid"):
        raise NotMember("an external contact, not a member")
    return str(result["userid"])
