"""DingTalk's contacts (通讯录) read for `safetybot sync-org --from dingtalk`, into a neutral
`Directory` (bot/org_sync.py).

What DingTalk answers (open.dingtalk.com, 通讯录管理; the old-style API on oapi.dingtalk.com,
POST with a JSON body, refusals as HTTP 200 with an `errcode`, which `DingTalkApi.legacy`
raises as `DingTalkError`):

- `topapi/v2/department/listsub {dept_id}`: the departments one level below, `result[]` of
  `{dept_id, name, parent_id}` — "只支持查询下一级子部门", so the tree is walked from the root,
  id 1 (permission 通讯录部门信息读权限, qyapi_get_department_list). The root itself, which no
  listsub lists, is read with `topapi/v2/department/get {dept_id: 1}`.
- `topapi/v2/user/list {dept_id, cursor, size}`: the department's own members (not its
  sub-departments'), `size` at most 100, in pages: `result {has_more, next_cursor, list[]}`,
  the first page at cursor 0 and the next at `next_cursor` while `has_more`. Each member has
  `userid`, `name`, `dept_id_list[]`, `leader` — whether they lead the department listed
  (`user/get` says it for every department as `leader_in_dept[]`; the list does not) — and
  `mobile` only when the app may read mobile numbers; `active` says whether they have
  activated DingTalk, not whether they still work here, so everyone listed is in the roster
  (permission 通讯录部门成员读权限, qyapi_get_department_member).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import aiohttp

from bot.channels import PlatformUnavailable
from bot.channels.dingtalk_api import PLATFORM, DingTalkApi, DingTalkError
from bot.org_sync import Directory, PlatformDepartment, PlatformPerson, SyncError
from bot.settings import Settings

ROOT = 1
PAGE = 100                       # user/list: "分页长度,最大值100"
HINTS = {
    "invalidClientIdOrSecret": "the app's credentials are wrong (SAFETYBOT_DINGTALK_CLIENT_ID, "
                               "SAFETYBOT_DINGTALK_CLIENT_SECRET)",
    "60011": "the app lacks a contacts permission (通讯录部门信息读权限, 通讯录部门成员读权限)",
    "60020": "this server's IP is not on the app's IP allow-list",
    "60121": "a department is outside the app's contacts range (通讯录权限范围)",
}


async def read(settings: Settings, session: aiohttp.ClientSession, instance: str,
               clock: Callable[[], datetime]) -> Directory:
    """The department tree from the root down, then each department's members, page by page."""
    api = DingTalkApi(settings.dingtalk, session, instance, clock)
    try:
        root = await _call(api, "topapi/v2/department/get", {"dept_id": ROOT})
        tree: dict[int, tuple[str, int | None]] = {ROOT: (str(root["name"]), None)}
        below = [ROOT]
        while below:
            parent = below.pop(0)
            for sub in await _call(api, "topapi/v2/department/listsub", {"dept_id": parent}):
                tree[int(sub["dept_id"])] = (str(sub["name"]), parent)
                below.append(int(sub["dept_id"]))
        leaders: dict[int, list[str]] = {dept: [] for dept in tree}
        people: dict[str, PlatformPerson] = {}
        for dept in tree:
            for member in await _members(api, dept):
                if member.get("leader"):
                    leaders[dept].append(str(member["userid"]))
                people.setdefault(str(member["userid"]), _person(member))
    except (KeyError, TypeError, ValueError) as exc:
        raise SyncError(f"DingTalk answered in a shape not understood: {exc!r}") from None
    departments = tuple(PlatformDepartment(id, name, parent, tuple(leaders[id]))
                        for id, (name, parent) in tree.items())
    return Directory(PLATFORM, departments, tuple(people.values()))


async def _members(api: DingTalkApi, dept: int) -> list[dict[str, Any]]:
    members: list[dict[str, Any]] = []
    cursor = 0
    while True:
        page = await _call(api, "topapi/v2/user/list",
                           {"dept_id": dept, "cursor": cursor, "size": PAGE})
        members += page.get("list", [])
        if not page.get("has_more"):
            return members
        cursor = int(page["next_cursor"])


async def _call(api: DingTalkApi, path: str, body: Mapping[str, Any]) -> Any:
    """The call's `result`."""
    try:
        return (await api.legacy(path, json=body))["result"]
    except DingTalkError as exc:
        hint = HINTS.get(exc.code)
        raise SyncError(f"{path}: {exc}" + (f" — {hint}" if hint else "")) from None
    except PlatformUnavailable as exc:
        raise SyncError(f"DingTalk unreachable ({exc})") from None


def _person(raw: Mapping[str, Any]) -> PlatformPerson:
    return PlatformPerson(uid=str(raw["userid"]), name=str(raw["name"]),
                          departments=tuple(int(d) for d in raw.get("dept_id_list", [])),
                          mobile=str(raw.get("mobile") or ""))
