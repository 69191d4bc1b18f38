"""A plant's contacts (通讯录) as WeCom and DingTalk list them, for `safetybot sync-org`'s tests
and benchmark: one directory — a tree of departments, the people in them, who leads which —
that tests change between syncs, and each platform's contact API answered from it.

WeCom (mounted by `simulator/wecom.py`): `department/list` gives every department with its
`parentid` and `department_leader`; `user/list?department_id=N` the department's own members
(not its sub-departments'), each with all its `department` ids, `is_leader_in_dept` beside
them, `main_department` and `status`. DingTalk (`dingtalk_handlers`, for the DingTalk
simulator's `add_routes`): `topapi/v2/department/get` and `listsub` (one level of
sub-departments), `topapi/v2/user/list` a department's own members in pages of at most 100
(`cursor`, `has_more`, `next_cursor`), each with its `dept_id_list` and `leader` — whether
they lead the department listed.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

ROOT = 1                       # both platforms' root department
DINGTALK_PAGE = 100            # topapi/v2/user/list: "size … 最大值100"
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏辉建国志宏文斌波海燕宁"
UNITS = ("生产部", "设备部", "安全环保部", "仓储物流部", "质检部", "技术部", "动力车间", "综合办",
         "采购部", "销售部")


class UnknownDepartment(Exception):
    """A department id the directory does not have (WeCom 60123, DingTalk 60003)."""


@dataclass
class SimDepartment:
    id: int
    name: str
    parent: int                           # 0 for the root, as WeCom's `parentid` has it
    leaders: list[str] = field(default_factory=list)   # uids, the first the head


@dataclass
class SimPerson:
    uid: str
    name: str
    departments: list[int]                # the main department first
    mobile: str = ""
    status: int = 1                       # WeCom's: 1 active, 2 disabled, 4 not yet joined


class Contacts:
    """The directory a platform holds; tests change it with the methods below, as HR would."""

    def __init__(self, company: str = "示例化工厂") -> None:
        self.departments: dict[int, SimDepartment] = {ROOT: SimDepartment(ROOT, company, 0)}
        self.people: dict[str, SimPerson] = {}

    # -- building and changing it -------------------------------------------------------------

    def department(self, id: int, name: str, parent: int = ROOT) -> SimDepartment:
        self._known(parent)
        self.departments[id] = SimDepartment(id, name, parent)
        return self.departments[id]

    def person(self, uid: str, name: str, *departments: int, mobile: str = "",
               leads: tuple[int, ...] = ()) -> SimPerson:
        """Someone who joins, in `departments` (the root when none), leading those in `leads`."""
        for dept in (*departments, *leads):
            self._known(dept)
        self.people[uid] = SimPerson(uid, name, list(departments or (ROOT,)), mobile)
        for dept in leads:
            self.departments[dept].leaders.append(uid)
        return self.people[uid]

    def leaves(self, uid: str) -> None:
        del self.people[uid]
        for dept in self.departments.values():
            if uid in dept.leaders:
                dept.leaders.remove(uid)

    def moves(self, uid: str, *departments: int) -> None:
        for dept in departments:
            self._known(dept)
        self.people[uid].departments = list(departments)

    def move_department(self, id: int, parent: int) -> None:
        self._known(parent)
        self.departments[id].parent = parent

    def _known(self, id: int) -> None:
        if id not in self.departments:
            raise UnknownDepartment(id)

    @classmethod
    def generate(cls, people: int, departments: int, seed: int = 0) -> Contacts:
        """A plant of `people` in `departments` (the root included): a tree three levels deep,
        each department headed by one of its own members; one person in twenty also belongs to
        a second department. The same arguments give the same plant."""
        rng = random.Random(seed)
        plant = cls()
        units = max(1, min(len(UNITS), (departments - 1) // 10))
        for n in range(2, departments + 1):
            if n - 2 < units:
                plant.department(n, UNITS[n - 2])
            else:
                parent = 2 + (n - 2 - units) % units
                plant.department(n, f"{plant.departments[parent].name}{n - units - 1}班", parent)
        ids = list(plant.departments)
        for i in range(people):
            home = ids[i % len(ids)]
            others = [rng.choice(ids)] if rng.random() < 0.05 else []
            plant.person(f"u{i:05d}", plant.random_name(rng), home,
                         *[d for d in others if d != home], mobile=f"138{i:08d}",
                         leads=(home,) if i < len(ids) else ())
        return plant

    def churn(self, share: float, seed: int = 1) -> int:
        """HR's changes since the last sync, to `share` of the people: some renamed, some moved,
        some gone and as many newcomers. Heads stay. Returns the number of changes."""
        rng = random.Random(seed)
        heads = {uid for dept in self.departments.values() for uid in dept.leaders}
        staff = sorted(set(self.people) - heads)
        changed = rng.sample(staff, max(1, round(len(self.people) * share)))
        ids = list(self.departments)
        for n, uid in enumerate(changed):
            if n % 4 == 0:
                self.people[uid].name = self.random_name(rng)
            elif n % 4 == 1:
                self.moves(uid, rng.choice(ids))
            elif n % 4 == 2:
                self.leaves(uid)
            else:
                self.person(f"n{seed}x{n:05d}", self.random_name(rng), rng.choice(ids))
        return len(changed)

    @staticmethod
    def random_name(rng: random.Random) -> str:
        return rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.choice((1, 2))))

    # -- what the platforms list ----------------------------------------------------------------

    def members(self, id: int) -> Iterator[SimPerson]:
        """The department's own members, in the order they joined."""
        self._known(id)
        return (p for p in self.people.values() if id in p.departments)

    def wecom_departments(self, id: int | None = None) -> list[dict[str, Any]]:
        """department/list: the department `id` and every one below it; all without an id."""
        wanted = set(self.departments) if id is None else set(self._subtree(id))
        return [{"id": d.id, "name": d.name, "name_en": "", "parentid": d.parent,
                 "order": 100000000 - d.id, "department_leader": list(d.leaders)}
                for d in self.departments.values() if d.id in wanted]

    def wecom_members(self, id: int) -> list[dict[str, Any]]:
        """user/list?department_id=N (the fields a self-built app sees)."""
        return [{"userid": p.uid, "name": p.name, "department": list(p.departments),
                 "order": [0] * len(p.departments), "position": "", "mobile": p.mobile,
                 "is_leader_in_dept": [int(p.uid in self.departments[d].leaders)
                                       for d in p.departments],
                 "main_department": p.departments[0], "status": p.status}
                for p in self.members(id)]

    def dingtalk_department(self, id: int) -> dict[str, Any]:
        self._known(id)
        dept = self.departments[id]
        return {"dept_id": dept.id, "name": dept.name,
                **({"parent_id": dept.parent} if dept.parent else {}),
                "dept_manager_userid_list": list(dept.leaders)}

    def dingtalk_subdepartments(self, id: int) -> list[dict[str, Any]]:
        self._known(id)
        return [{"dept_id": d.id, "name": d.name, "parent_id": d.parent,
                 "create_dept_group": False, "auto_add_user": False}
                for d in self.departments.values() if d.parent == id]

    def dingtalk_members(self, id: int, cursor: int, size: int) -> dict[str, Any]:
        everyone = list(self.members(id))
        page = everyone[cursor:cursor + size]
        more = cursor + size < len(everyone)
        return {"has_more": more, **({"next_cursor": cursor + size} if more else {}),
                "list": [{"userid": p.uid, "unionid": f"union-{p.uid}", "name": p.name,
                          "mobile": p.mobile, "dept_id_list": list(p.departments),
                          "leader": p.uid in self.departments[id].leaders,
                          "active": p.status == 1, "admin": False, "boss": False}
                         for p in page]}

    def _subtree(self, id: int) -> Iterator[int]:
        self._known(id)
        yield id
        for child in [d.id for d in self.departments.values() if d.parent == id]:
            yield from self._subtree(child)


# An old-style DingTalk endpoint's answer fields; an `errcode` in them is the refusal.
DingTalkHandler = Callable[[web.Request], Awaitable[dict[str, Any]]]


def dingtalk_handlers(directory: Callable[[], Contacts]) -> dict[str, DingTalkHandler]:
    """The old-style contact APIs (`oapi.dingtalk.com/<path>`, POST with a JSON body) by path,
    for the DingTalk simulator to mount behind its token check with `old_style_route`;
    `directory` gives its contacts as they are now (a test or benchmark may replace them)."""

    def get(body: dict[str, Any]) -> Any:
        return directory().dingtalk_department(_int(body.get("dept_id")))

    def listsub(body: dict[str, Any]) -> Any:
        return directory().dingtalk_subdepartments(_int(body.get("dept_id", ROOT)))

    def users(body: dict[str, Any]) -> Any:
        size = _int(body.get("size"))
        if not 1 <= size <= DINGTALK_PAGE:
            raise _Refused(400002, f"size must be 1 to {DINGTALK_PAGE}")
        return directory().dingtalk_members(_int(body.get("dept_id")),
                                            _int(body.get("cursor", 0)), size)

    answers = {"topapi/v2/department/get": get, "topapi/v2/department/listsub": listsub,
               "topapi/v2/user/list": users}
    return {path: _dingtalk_answer(answer) for path, answer in answers.items()}


class _Refused(Exception):
    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(errmsg)
        self.errcode = errcode
        self.errmsg = errmsg


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _Refused(400002, "invalid parameter")
    try:
        return int(value)
    except ValueError:
        raise _Refused(400002, "invalid parameter") from None


def _dingtalk_answer(answer: Callable[[dict[str, Any]], Any]) -> DingTalkHandler:
    async def handle(request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise _Refused(400002, "the body must be a JSON object")
            return {"result": answer(body)}
        except ValueError:
            return {"errcode": 400002, "errmsg": "the body is not JSON"}
        except UnknownDepartment:
            return {"errcode": 60003, "errmsg": "部门不存在"}
        except _Refused as exc:
            return {"errcode": exc.errcode, "errmsg": exc.errmsg}
    return handle
