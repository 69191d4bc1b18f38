"""WeCom's web login (企业微信 网页授权 and 企业微信Web登录), for the dashboard's sign-in.

- Inside the WeCom app, 构造网页授权链接: `{oauth_base}/connect/oauth2/authorize?appid=CORPID
  &redirect_uri=ENC&response_type=code&scope=snsapi_base&state=STATE&agentid=AGENTID
  #wechat_redirect` — snsapi_base signs in silently, without a consent page.
- On a PC, the QR login (Web登录): `{login_base}/wwlogin/sso/login?login_type=CorpApp
  &appid=CORPID&agentid=AGENTID&redirect_uri=ENC&state=STATE`.

Either sends the browser back to `redirect_uri?code=CODE&state=STATE`. The code names the person
once: `GET /cgi-bin/auth/getuserinfo?access_token=…&code=CODE` (developer.work.weixin.qq.com,
document/path/98177 and 91023; the older name was /cgi-bin/user/getuserinfo) answers
`{"errcode": 0, "userid": "…"}` for a member of the corp, `{"openid": …}` for anyone else;
"code只能使用一次，5分钟未被使用自动过期", and an unknown or used code is errcode 40029. The
redirect's host must be the app's 可信域名 (otherwise errcode 50001).
"""

from __future__ import annotations

from urllib.parse import urlencode

from bot.channels import CodeRefused, NotMember
from bot.channels.wecom_api import WeComApi, WeComError
from bot.settings import WeComSettings

BAD_CODE = frozenset({40029})     # invalid code: unknown, used, or older than five minutes


def in_app(user_agent: str) -> bool:
    """WeCom's own browser says `wxwork` in its User-Agent."""
    return "wxwork" in user_agent.lower()


def authorize_url(settings: WeComSettings, redirect_uri: str, state: str, *,
                  app: bool) -> str:
    """The page that signs the person in: 网页授权 inside the WeCom app (`app`), else the QR
    login for a PC."""
    if app:
        query = urlencode({"appid": settings.corp_id, "redirect_uri": redirect_uri,
                           "response_type": "code", "scope": "snsapi_base", "state": state,
                           "agentid": settings.agent_id})
        return f"{settings.oauth_base.rstrip('/')}/connect/oauth2/authorize?{query}" \
               "#wechat_redirect"
    query = urlencode({"login_type": "CorpApp", "appid": settings.corp_id,
                       "agentid": settings.agent_id, "redirect_uri": redirect_uri,
                       "state": state})
    return f"{settings.login_base.rstrip('/')}/wwlogin/sso/login?{query}"


async def member_of_code(api: WeComApi, code: str) -> str:
    """The member's UserID the code names. Raises CodeRefused, NotMember, or the API's own
    errors (WeComError, PlatformUnavailable) for the platform failing."""
    try:
        answer = await api.call("GET", "auth/getuserinfo", params={"code": code})
    except WeComError as exc:
        if exc.errcode in BAD_CODE:
            raise CodeRefused(f"wecom errcode {exc.errcode}") from None
        raise
    userid = str(answer.get("userid") or answer.get("UserId") or "")
    if not userid:
        raise NotMember("the code names someone outside the corp (openid only)")
    return userid
