"""The wait / deadline arithmetic the Wait state's SecondsPath reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from imagegateway.domain.polling import deadline_passed, next_wait_seconds

NOW = datetime(2026, 11, 25, 16, 0, tzinfo=UTC)
FAR = NOW + timedelta(hours=1)


@pytest.mark.parametrize(
    ("polls", "expected"), [(0, 5), (1, 8), (2, 12), (3, 17), (4, 26), (5, 30), (20, 30)]
)
def test_waits_back_off_up_to_the_maximum(polls: int, expected: int) -> None:
    # Given a 5 s first interval, x1.5 per check, capped at 30 s
    # When the next wait is computed
    # Then it grows and stops at the cap
    assert (
        next_wait_seconds(polls=polls, now=NOW, deadline_at=FAR, initial=5, maximum=30) == expected
    )


def test_a_wait_never_sleeps_past_the_deadline() -> None:
    # Given 7 s left before the deadline and a 30 s interval
    deadline = NOW + timedelta(seconds=7)
    # Then the wait ends at the deadline, so a timeout is seen within one check of it
    assert next_wait_seconds(polls=10, now=NOW, deadline_at=deadline, initial=5, maximum=30) == 7


def test_a_wait_is_at_least_one_second() -> None:
    past = NOW - timedelta(seconds=30)
    assert next_wait_seconds(polls=0, now=NOW, deadline_at=past, initial=5, maximum=30) == 1


def test_deadline_passes_at_the_deadline_itself() -> None:
    assert not deadline_passed(now=NOW - timedelta(microseconds=1), deadline_at=NOW)
    assert deadline_passed(now=NOW, deadline_at=NOW)
    assert deadline_passed(now=NOW + timedelta(seconds=1), deadline_at=NOW)
