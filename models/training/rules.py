"""What a plant decides about training (config/training.toml): the pass mark and the wait
before a retry, the reminders and the ladder of an assignment, the practical checks' sample, the
thresholds that make a group weak, each post's yearly credit target, and the classroom courses
an imported ledger may name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta


@dataclass(frozen=True)
class WeakThresholds:
    """A group (department and post) is weak in a course when, over the last week, its pass
    rate or mean score is under these, or its completion of the courses already due is."""

    pass_rate: float = 0.7
    mean_score: float = 75.0
    completion: float = 0.8
    min_attempts: int = 5          # fewer finished quizzes than this says nothing yet
    catchup_days: int = 14         # the catch-up course's deadline, from the day it is given


@dataclass(frozen=True)
class TrainingRules:
    pass_mark: int = 80                          # a course file may set its own
    retry_wait: timedelta = timedelta(minutes=30)   # after a failed level
    # A quiz left this long starts its level again; None: it resumes where it stopped.
    restart_after: timedelta | None = None
    remind_days: tuple[int, ...] = (3, 1)        # before an assignment's deadline, to the learner
    escalate_days: tuple[int, ...] = (1, 3)      # after it: the supervisor, then theirs
    prejob_days: int = 7                         # a new hire's pre-job pack is due in
    retrain_days: int = 14                       # a new post's 车间级 and 班组级 courses
    practical_share: float = 0.2                 # of a day's passers, at least one a department
    practical_days: int = 7                      # the supervisor has this long to do the check
    weak: WeakThresholds = field(default_factory=WeakThresholds)
    credit_targets: Mapping[str, float] = field(default_factory=lambda: {"*": 12.0})
    classroom: tuple[str, ...] = ()              # courses taught in a room, for the import

    def credit_target(self, post: str) -> float:
        return self.credit_targets.get(post, self.credit_targets.get("*", 0.0))
