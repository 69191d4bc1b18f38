"""WeCom's contacts (通讯录) read for `safetybot sync-org --from wecom`, into a neutral
`Directory` (bot/org_sync.py).

What WeCom answers (developer.work.weixin.qq.com, 通讯录管理 — 获取部门列表 and 获取部门成员详情):

- `GET cgi-bin/department/list` without an `id`: every department the app may see, as
  `department[]` of `{id, name, parentid, order, department_leader[]}`. The root is id 1 with
  `parentid` 0; `department_leader` holds the heads' UserIDs (those the app may see), the head
  first. A self-built app sees the departments of its visibility (可见范围) only.
- `GET cgi-bin/user/list?department_id=N`: the department's own members, not those of the
  departments below it ("需先获取该部门下的子部门,然后再获取子部门下的部门成员,
  逐层递归获取"), so it is called once per department, and someone in two departments is
  listed twice. Each member
  has `userid`, `name`, `department[]` (all of theirs) with `is_leader_in_dept[]` beside it (the
  same fact as `department_leader`, which is what is read), `main_department`, `status` (1
  active, 2 disabled, 4 not joined yet, 5 left) and `mobile` — which WeCom gives only to apps
  created before 2022-06-20; a newer app gets "" and the roster keeps its mobiles.
- Refusals are HTTP 200 with an `errcode` (`WeComApi` raises `WeComError`); the ones an admin
  can mend are named in `HINTS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import aiohttp

from bot.channels import PlatformUnavailable
from bot.channels.wecom_api import WeComApi, WeComError
from bot.org_sync import Directory, PlatformDepartment, PlatformPerson, SyncError
from bot.settings import Settings

PLATFORM = "wecom"
GONE = frozenset({2, 5})         # status: disabled, left the company
HINTS = {
    40001: "the secret is wrong (SAFETYBOT_WECOM_SECRET)",
    48002: "the app may not read the contacts: grant it 通讯录 read access",
    60011: "a department is outside the app's visibility (可见范围)",
    60020: "this server's IP is not among the app's 企业可信IP",
}


async def read(settings: Settings, session: aiohttp.ClientSession, instance: str,
               clock: Callable[[], datetime]) -> Directory:
    """Every department the app sees and everyone in them, a call per department."""
    api = WeComApi(settings.wecom, session, instance, clock)
    listed = await _call(api, "department/list")
    try:
        departments = tuple(_department(d) for d in listed.get("department", []))
        people: dict[str, PlatformPerson] = {}
        for dept in departments:
            members = await _call(api, "user/list", {"department_id": str(dept.id)})
            for member in members.get("userlist", []):
                people.setdefault(str(member["userid"]), _person(member))
    except (KeyError, TypeError, ValueError) as exc:
        raise SyncError(f"WeCom answered in a shape not understood: {exc!r}") from None
    return Directory(PLATFORM, departments, tuple(people.values()))


async def _call(api: WeComApi, path: str, params: Mapping[str, str] | None = None
                ) -> dict[str, Any]:
    try:
        return await api.call("GET", path, params=params)
    except WeComError as exc:
        hint = HINTS.get(exc.errcode)
        raise SyncError(f"{path}: {exc}" + (f" — {hint}" if hint else "")) from None
    except PlatformUnavailable as exc:
        raise SyncError(f"WeCom unreachable ({exc})") from None


def _department(raw: Mapping[str, Any]) -> PlatformDepartment:
    return PlatformDepartment(id=int(raw["id"]), name=str(raw["name"]),
                              parent=int(raw.get("parentid") or 0) or None,
                              leaders=tuple(str(u) for u in raw.get("department_leader", [])))


def _person(raw: Mapping[str, Any]) -> PlatformPerson:
    departments = [int(d) for d in raw.get("department", [])]
    main = int(raw.get("main_department") or 0)
    if main in departments:
        departments.remove(main)
        departments.insert(0, main)
    return PlatformPerson(uid=str(raw["userid"]), name=str(raw["name"]),
                          departments=tuple(departments), mobile=str(raw.get("mobile") or ""),
                          active=int(raw.get("status", 1)) not in GONE)
