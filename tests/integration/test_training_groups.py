"""The weekly job's groups (a department's post): who belongs to one, which is who a weak group's
catch-up course is given to."""

from __future__ import annotations

from tortoise.context import TortoiseContext

from models.org import Department, User
from models.people.profiles import Profile
from models.training.groups import members


async def test_a_group_is_its_departments_active_people_of_its_post(db: TortoiseContext
                                                                    ) -> None:
    for code in ("d1", "d2"):
        await Department.create(id=code, name=f"{code}车间")
    people = {           # id: department, post (None: no profile), active
        "a": ("d1", "焊工", True), "b": ("d1", None, True), "c": ("d1", "", True),
        "d": ("d1", "电工", True), "e": ("d2", "焊工", True), "f": ("d1", "焊工", False),
        "g": (None, None, True), "h": (None, "焊工", True), "i": ("d1", None, False),
    }
    for pid, (department, post, active) in people.items():
        await User.create(id=pid, name=pid, department_id=department, active=active)
        if post is not None:
            await Profile.create(person_id=pid, post=post)
    assert await members("d1", "焊工") == ["a"]
    assert await members("d2", "焊工") == ["e"]
    assert await members(None, "焊工") == ["h"]
    # 未定岗位: the department's people without a post, not everyone in it.
    assert await members("d1", "") == ["b", "c"]
    assert await members(None, "") == ["g"]
    assert await members("d2", "电工") == []
