"""When to check the upstream next, and when to give up: pure arithmetic, unit-tested."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

# Each wait is this much longer than the previous one, up to the configured maximum.
BACKOFF_FACTOR = 1.5


def next_wait_seconds(
    *, polls: int, now: datetime, deadline_at: datetime, initial: int, maximum: int
) -> int:
    """Seconds before the next status check: backs off, but never sleeps past the deadline
    (so a timed-out job is noticed within one interval of it) and never less than 1 s."""
    interval = min(maximum, math.ceil(initial * BACKOFF_FACTOR ** max(polls, 0)))
    remaining = math.ceil((deadline_at - now).total_seconds())
    return max(1, min(interval, remaining))


def deadline_passed(*, now: datetime, deadline_at: datetime) -> bool:
    return now >= deadline_at


def capped_wait(seconds: float, *, now: datetime, deadline_at: datetime) -> int:
    """A wait in the state machine someone asked for (a Retry-After): at least 1 s, never past
    the job's deadline."""
    remaining = math.ceil((deadline_at - now).total_seconds())
    return max(1, min(math.ceil(seconds), remaining))


def hand_over_due(
    *, started_at: datetime | None, now: datetime, wait_seconds: float, hand_over_seconds: int
) -> bool:
    """Express executions live at most 5 minutes: whether the next step, after `wait_seconds`,
    would begin past this execution's hand-over time (None: the execution has no clock, it is
    a Standard one)."""
    if started_at is None:
        return False
    return now + timedelta(seconds=wait_seconds) >= started_at + timedelta(
        seconds=hand_over_seconds
    )
