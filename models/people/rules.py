"""The qualification rules as data: certificate types with their validity and review rule
(config/certificates.toml), work types with what they need, and the hours a person must have
trained (config/work-types.toml). Read once at start-up by `bot/qualification.py`."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class CertificateType:
    code: str                       # T-EL-LV
    name: str                       # 低压电工作业
    family: str                     # 特种作业操作证 / 特种设备作业人员证 / 承包商资质 …
    valid_years: int                # from the issue date
    review_years: int | None = None     # 复审 every N years; None: no review
    review_window_days: int = 60        # the review is applied for within this many days
    # Working without it is 特种作业人员未持证上岗, a 重大事故隐患 (a refusal proposes a ticket).
    special: bool = False
    holder: str = "person"          # or "contractor": a company's licence or permit

    @property
    def label(self) -> str:
        """`特种作业操作证（低压电工作业）`: as a certificate names itself."""
        return f"{self.family}（{self.name}）" if self.family != self.name else self.name


@dataclass(frozen=True)
class WorkType:
    name: str                                   # 动火作业
    aliases: tuple[str, ...] = ()
    # Each requirement is met by a valid certificate of any one of its types.
    certificates: tuple[tuple[str, ...], ...] = ()
    trainings: tuple[str, ...] = ()             # courses passed (exam included)
    permit: str = ""                            # the GB 30871 作业票 it implies, by name


@dataclass(frozen=True)
class Hours:
    """Training hours: before a new hire's first work, and in every 12 months after."""

    prejob: float
    yearly: float


@dataclass(frozen=True)
class Post:
    name: str                                   # 岗位: 电工
    work_types: tuple[str, ...] = ()            # the work the post does
    hours: Hours | None = None                  # when it differs from the plant's


@dataclass(frozen=True)
class QualificationRules:
    certificates: Mapping[str, CertificateType] = field(default_factory=dict)
    work_types: Mapping[str, WorkType] = field(default_factory=dict)
    posts: Mapping[str, Post] = field(default_factory=dict)
    hours: Hours = Hours(24, 20)
    role_hours: Mapping[str, Hours] = field(default_factory=dict)   # principal, safety_manager
    reminder_days: tuple[int, ...] = (60, 30, 7)
    crew_max: int = 20
    # The ticket a refusal for a missing special-operations certificate proposes.
    major_category: str = "D09"
    major_basis: str = ""
    contractor_course: str = ""     # the entry training a contractor worker must pass

    def work_type(self, word: str) -> WorkType | None:
        """By name or alias."""
        return next((w for w in self.work_types.values() if word in (w.name, *w.aliases)),
                    None)

    def certificate_type(self, word: str) -> CertificateType | None:
        """By code, name or label (`低压电工作业`, `特种作业操作证（低压电工作业）`)."""
        return self.certificates.get(word) or next(
            (t for t in self.certificates.values() if word in (t.name, t.label)), None)

    def hours_for(self, post: str, roles: Collection[str]) -> Hours:
        """The role's hours (主要负责人, 安全管理人员) before the post's, before the plant's."""
        for role in ("principal", "safety_manager"):
            if role in roles and role in self.role_hours:
                return self.role_hours[role]
        found = self.posts.get(post)
        return found.hours if found is not None and found.hours is not None else self.hours
