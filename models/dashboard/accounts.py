"""Who signs in to the dashboard: people of the roster through their platform's login (OAuth),
local administrators with a password (a plant without WeCom or DingTalk), and the browser
sessions both get. A session's cookie holds a random token; the database keeps its hash only, so
a copy of the database opens no browser. Sessions end at their expiry, at logout, and when the
person leaves the roster."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from tortoise import fields
from tortoise.models import Model

from models.org import User

_hasher = PasswordHasher()
PASSWORD_CHARS = 16


class LocalAdmin(Model):
    name = fields.CharField(max_length=64, primary_key=True)
    password_hash = fields.CharField(max_length=200)
    created_at = fields.DatetimeField()
    active = fields.BooleanField(default=True)

    class Meta:
        table = "dashboard_admin"


class WebSession(Model):
    id = fields.BigIntField(primary_key=True)
    token_hash = fields.CharField(max_length=64, unique=True)
    user_id = fields.CharField(max_length=64, default="")     # a person of the roster, or
    admin = fields.CharField(max_length=64, default="")       # a local administrator
    csrf = fields.CharField(max_length=64)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    ended_at = fields.DatetimeField(null=True)

    class Meta:
        table = "dashboard_session"


class LoginState(Model):
    """An OAuth `state` handed to the platform: used once, within minutes."""

    state = fields.CharField(max_length=64, primary_key=True)
    platform = fields.CharField(max_length=16)
    created_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "dashboard_login_state"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def add_admin(name: str, now: datetime, password: str | None = None) -> str:
    """A local administrator (or a new password for one); the password, to be shown once."""
    password = password or secrets.token_urlsafe(PASSWORD_CHARS)[:PASSWORD_CHARS]
    hashed = _hasher.hash(password)
    row = await LocalAdmin.get_or_none(name=name)
    if row is None:
        await LocalAdmin.create(name=name, password_hash=hashed, created_at=now)
    else:
        row.password_hash, row.active = hashed, True
        await row.save(update_fields=["password_hash", "active"])
    return password


async def any_admin() -> bool:
    return await LocalAdmin.filter(active=True).exists()


async def check_admin(name: str, password: str) -> bool:
    row = await LocalAdmin.get_or_none(name=name, active=True)
    if row is None:
        _hasher.hash(password)        # the same time for a name that does not exist
        return False
    try:
        return _hasher.verify(row.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class Opened:
    token: str      # for the cookie; never stored
    csrf: str


async def open_session(now: datetime, lasts: timedelta, *, user_id: str = "", admin: str = ""
                       ) -> Opened:
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    await WebSession.create(token_hash=digest(token), user_id=user_id, admin=admin, csrf=csrf,
                            created_at=now, expires_at=now + lasts)
    return Opened(token, csrf)


@dataclass(frozen=True)
class Signed:
    """A live session: a person of the roster (`user`), or a local administrator (`admin`)."""

    session_id: int
    csrf: str
    user: User | None
    admin: str


async def session_of(token: str, now: datetime) -> Signed | None:
    """The session a cookie names, while it lasts and its person is still on the roster."""
    if not token:
        return None
    row = await WebSession.get_or_none(token_hash=digest(token), ended_at=None,
                                       expires_at__gt=now)
    if row is None:
        return None
    if row.admin:
        if not await LocalAdmin.filter(name=row.admin, active=True).exists():
            return None
        return Signed(row.id, row.csrf, None, row.admin)
    user = await User.get_or_none(id=row.user_id, active=True)
    return Signed(row.id, row.csrf, user, "") if user is not None else None


async def person_of(platform: str, uid: str) -> User | None:
    """The active person of the roster whose id on `platform` is `uid`: the one with that
    `platform_id` (a DingTalk staffId beside a WeCom-style roster key), else the one of that
    id. None for a stranger or someone deactivated."""
    if not uid:
        return None
    person = (await User.filter(platform=platform, platform_id=uid).first()
              or await User.get_or_none(id=uid))
    return person if person is not None and person.active else None


async def end_session(session_id: int, now: datetime) -> None:
    await WebSession.filter(id=session_id, ended_at=None).update(ended_at=now)


async def new_state(platform: str, now: datetime) -> str:
    state = secrets.token_urlsafe(24)
    await LoginState.create(state=state, platform=platform, created_at=now)
    return state


async def take_state(state: str, platform: str, now: datetime, lasts: timedelta) -> bool:
    """True once for a state this service handed out to `platform` within `lasts`."""
    return bool(await LoginState.filter(state=state, platform=platform, used_at=None,
                                        created_at__gt=now - lasts).update(used_at=now))
