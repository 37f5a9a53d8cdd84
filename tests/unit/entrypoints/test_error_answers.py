"""Every HTTP error answer says whether retrying helps (`retryable`), from its code's decision;
a library error without a code of its own, from whether its answer says when to retry."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from imagegateway.domain.errors import (
    BudgetExceededError,
    FailureCode,
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
    JobNotFoundError,
    MalformedBodyError,
    UpstreamUnavailableError,
    WorkflowNotStartedError,
)
from imagegateway.entrypoints.http.error_answers import error_answer, validation_answer

LATER = datetime.now(UTC) + timedelta(hours=3)


def body_of(answer: Response[Any]) -> dict[str, Any]:
    body = answer.body
    parsed: dict[str, Any] = json.loads(body) if isinstance(body, (str, bytes)) else body
    return parsed


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (BudgetExceededError("spent", budget=3, used=3, resets_at=LATER), True),
        (WorkflowNotStartedError("throttled", job_id="j"), True),
        (UpstreamUnavailableError("down", job_id="j"), True),
        (RuntimeError("boom"), True),
        (JobNotFoundError("no job j"), False),
        (MalformedBodyError("not JSON"), False),
        # Library errors without a code: an answer with Retry-After is worth retrying.
        (IdempotencyAlreadyInProgressError("in progress"), True),
        (IdempotencyValidationError("other body"), False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_every_error_answer_says_whether_retrying_helps(error: Exception, retryable: bool) -> None:
    # When an error is answered / Then its body says whether the same request may succeed later
    body = body_of(error_answer(error))
    assert body["retryable"] is retryable
    code = getattr(error, "code", None)
    if isinstance(code, FailureCode) and "error_code" in body:
        assert body["retryable"] is FailureCode(body["error_code"]).retryable


def test_a_validation_answer_is_not_worth_retrying() -> None:
    error = RequestValidationError([{"loc": ("body", "width"), "msg": "too wide", "type": "x"}])
    assert body_of(validation_answer(error))["retryable"] is False
