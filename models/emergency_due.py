"""What falls due on an activation after its start: the commander's next board and the one-hour
事故上报 with its countdown.

Each is a column of the activation (`board_due_at`, `report_due_at` with `report_reminders`),
found by an indexed query and claimed with a compare-and-set
update: a second instance, or an answer's event beside the scheduler's tick, that read the same
row finds the update lost and sends nothing.
"""

from __future__ import annotations

from datetime import datetime

from models.emergency import Activation, ActivationStatus

# ---------------------------------------------------------------------------------------------
# The commander's board


async def board_sent(activation: Activation, now: datetime) -> bool:
    """An answer's board goes now: recorded as sent, nothing due any more. False when another
    answer, or the scheduler, sent one since `activation` was read."""
    won = await Activation.filter(id=activation.id, board_sent_at=activation.board_sent_at
                                  ).update(board_sent_at=now, board_due_at=None)
    return bool(won)


async def board_later(activation: Activation, at: datetime) -> None:
    """A board for the scheduler to send at `at`, unless one is due already: the earlier time
    stands, so answers arriving fast make one board an interval."""
    await Activation.filter(id=activation.id, board_due_at__isnull=True).update(board_due_at=at)


async def boards_due(now: datetime) -> list[Activation]:
    """The active responses whose board is due."""
    return list(await Activation.filter(status=ActivationStatus.ACTIVE, board_due_at__lte=now))


async def due_board_sent(activation: Activation, now: datetime) -> bool:
    """The scheduler sends the due board: False when an answer's board (or another instance)
    took it since `activation` was read."""
    won = await Activation.filter(id=activation.id, board_due_at=activation.board_due_at
                                  ).update(board_due_at=None, board_sent_at=now)
    return bool(won)


# ---------------------------------------------------------------------------------------------
# 事故上报


async def reports_due(by: datetime, stages: int) -> list[Activation]:
    """The activations whose 事故上报 is not recorded, is due by `by` (the countdown's first
    stage ahead of now), and has had fewer than `stages` reminders."""
    return list(await Activation.filter(report_due_at__lte=by, reported_at__isnull=True,
                                        report_reminders__lt=stages))


async def report_reminded(activation: Activation, stage: int) -> bool:
    """The countdown's reminder of `stage` is sent; False when another instance sent it
    (or a later one) since `activation` was read."""
    won = await Activation.filter(id=activation.id,
                                  report_reminders=activation.report_reminders
                                  ).update(report_reminders=stage)
    return bool(won)


async def report_awaited() -> Activation | None:
    """The newest activation whose 事故上报 is due and not yet recorded: what 已上报 records."""
    return await Activation.filter(report_due_at__isnull=False, reported_at__isnull=True
                                   ).order_by("-id").first()


async def mark_reported(activation: Activation, now: datetime) -> None:
    """已上报: the time the commander reported, which ends the countdown."""
    await Activation.filter(id=activation.id).update(reported_at=now)
