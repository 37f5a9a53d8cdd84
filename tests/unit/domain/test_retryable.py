"""Whether retrying helps: decided once per FailureCode (domain.errors), never per call site."""

from __future__ import annotations

import pytest

from imagegateway.domain import errors
from imagegateway.domain.errors import FailureCode


def test_every_failure_code_has_a_retryable_decision() -> None:
    # Given the one list of codes / Then each has a decision, and nothing else has one
    assert set(errors.RETRYABLE) == set(FailureCode)
    assert all(isinstance(FailureCode(code).retryable, bool) for code in FailureCode)


@pytest.mark.parametrize(
    ("code", "retryable"),
    [
        # The same request may well succeed later: the upstream or the gateway was unwell.
        (FailureCode.UPSTREAM_TIMEOUT, True),
        (FailureCode.UPSTREAM_UNAVAILABLE, True),
        (FailureCode.UPSTREAM_RATE_LIMITED, True),
        (FailureCode.WORKFLOW_NOT_STARTED, True),
        (FailureCode.TIMED_OUT, True),
        (FailureCode.NOT_SUBMITTED, True),
        (FailureCode.INTERNAL_ERROR, True),
        (FailureCode.BUDGET_EXCEEDED, True),
        # The same request fails the same way: the caller must change it (or meant it).
        (FailureCode.INVALID_REQUEST, False),
        (FailureCode.UPSTREAM_REJECTED, False),
        (FailureCode.IMAGE_REJECTED, False),
        (FailureCode.CANCELLED, False),
        (FailureCode.IDEMPOTENCY_KEY_REUSED, False),
        (FailureCode.PROMPT_TOO_LONG, False),
        (FailureCode.JOB_NOT_FOUND, False),
    ],
)
def test_retryable_says_whether_the_same_request_may_succeed_later(
    code: FailureCode, retryable: bool
) -> None:
    assert code.retryable is retryable


def test_a_stored_code_string_reads_its_codes_decision() -> None:
    # Given codes as job rows store them (plain strings), or none, or one no longer known
    # Then the string reads its member's decision; an unknown code or none, the gateway's own
    # failure's (INTERNAL_ERROR: nothing says the request itself is at fault)
    assert errors.retryable_of("TIMED_OUT") is True
    assert errors.retryable_of("CANCELLED") is False
    assert errors.retryable_of(None) is FailureCode.INTERNAL_ERROR.retryable
    assert errors.retryable_of("NO_SUCH_CODE") is FailureCode.INTERNAL_ERROR.retryable
