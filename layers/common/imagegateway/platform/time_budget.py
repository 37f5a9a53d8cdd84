"""How long the current invocation may still run, so every retry and timeout inside a function
fits in it: a function killed by its own timeout raises nothing the state machine can act on.

The entry points set the budget from the Lambda context; code that waits or retries asks
`remaining_seconds()`. Outside an invocation (tests, tools) the budget is unlimited.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol

# Kept back from the function's own timeout: time to raise, log and return a typed answer.
SAFETY_MARGIN_SECONDS = 2.0

_deadline: ContextVar[float | None] = ContextVar("invocation_deadline", default=None)


class HasRemainingTime(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


def remaining_seconds() -> float:
    """Seconds left before the budget ends (never negative); infinite outside an invocation."""
    deadline = _deadline.get()
    if deadline is None:
        return math.inf
    return max(0.0, deadline - time.monotonic())


# Below this much time for an answer, a network call is not started at all.
MIN_CALL_SECONDS = 1.0


def read_timeout_within_budget(read_seconds: float, connect_seconds: float) -> float | None:
    """The read timeout cut so that connect + read ends inside the budget; None when less than
    MIN_CALL_SECONDS would be left for the answer (the caller raises its own typed error)."""
    read = min(read_seconds, remaining_seconds() - connect_seconds)
    return read if read >= MIN_CALL_SECONDS else None


@contextmanager
def invocation_budget(
    context: HasRemainingTime | None, margin: float = SAFETY_MARGIN_SECONDS
) -> Iterator[None]:
    """Within the block, `remaining_seconds()` counts down to the context's end minus `margin`."""
    deadline: float | None = None
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        remaining = context.get_remaining_time_in_millis() / 1000
        deadline = time.monotonic() + max(0.0, remaining - margin)
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)
