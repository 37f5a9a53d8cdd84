"""What SD 1.5 reads of a request's prompts: counts, the warning, and the strict refusal."""

from __future__ import annotations

from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from imagegateway.domain import clip_tokens
from imagegateway.domain.errors import NOT_JOB_CODES, FailureCode, PromptTooLongError
from imagegateway.domain.prompt_tokens import (
    MAX_QUOTED_CHARS,
    measure_prompts,
    refuse_truncated_prompts,
)
from imagegateway.domain.records import TokenCounts
from imagegateway.entrypoints.http.resolver import requested_wait
from imagegateway.entrypoints.http.submit_routes import strict_tokens_requested
from tests.support.clip_reference import LONG

# 95 tokens by OpenAI's SimpleTokenizer (tests/support/clip_reference_ids.json).
LONG_PROMPT = LONG[-1]


def test_prompts_within_the_window_are_counted_without_a_warning() -> None:
    # Given a body with a short prompt and a negative prompt
    body = {"model_id": "sd1.5", "prompt": "a (red:1.2) fox", "negative_prompt": "blurry"}
    # When it is measured
    measured = measure_prompts(body)
    # Then both are counted against the 75-token window, and nothing is over
    assert measured.counts == TokenCounts(prompt=9, negative_prompt=1, limit=75)
    assert (measured.overflows, measured.warnings) == ([], [])


def test_an_absent_negative_prompt_counts_zero() -> None:
    assert measure_prompts({"prompt": "a fox"}).counts == TokenCounts(
        prompt=2, negative_prompt=0, limit=75
    )


def test_a_prompt_over_the_window_is_warned_with_the_words_the_model_ignores() -> None:
    # Given a 95-token prompt
    body = {"prompt": LONG_PROMPT}
    # When it is measured
    measured = measure_prompts(body)
    # Then its count is exact, and the warning names the words of its last 20 tokens
    assert measured.counts.prompt == 95
    (warning,) = measured.warnings
    assert warning == (
        "prompt: 95 tokens, over the 75 the model reads; ignored: 'and moebius , dramatic "
        "lighting , wide angle lens , rich colors , highly detailed textures , sharp focus'"
    )


def test_both_prompts_over_the_window_get_one_warning_each_and_long_tails_are_shortened() -> None:
    # Given a negative prompt of 350 tokens and a prompt of 100
    body = {"prompt": "very " * 100, "negative_prompt": "(ugly:1.3), " * 50}
    # When it is measured
    measured = measure_prompts(body)
    # Then each field has its warning, in field order
    assert [w.split(":")[0] for w in measured.warnings] == ["prompt", "negative_prompt"]
    assert measured.counts.negative_prompt == clip_tokens.count("(ugly:1.3), " * 50) == 350
    # And a long ignored tail is quoted up to a bound, ending with an ellipsis
    quoted = measured.warnings[1].split("ignored: ")[1]
    assert len(quoted) <= MAX_QUOTED_CHARS + 2
    assert quoted.endswith("…'")


def test_strictness_refuses_a_prompt_over_the_window_naming_the_field() -> None:
    # Given a body whose negative prompt is over the window
    body = {"prompt": "a fox", "negative_prompt": LONG_PROMPT}
    # When strictness is applied / Then it is refused, naming negative_prompt only
    with pytest.raises(PromptTooLongError) as refused:
        refuse_truncated_prompts(measure_prompts(body))
    assert [field for field, _ in refused.value.details] == ["negative_prompt"]
    assert refused.value.details[0][1].startswith("95 tokens, over the 75 the model reads;")
    assert refused.value.message == (
        "invalid request: negative_prompt: 95 tokens, over the 75 the model reads "
        "(Prefer: strict-tokens)"
    )
    # And the code never ends a job (the request is refused before one exists)
    assert refused.value.code is FailureCode.PROMPT_TOO_LONG
    assert FailureCode.PROMPT_TOO_LONG in NOT_JOB_CODES


def test_strictness_lets_a_prompt_of_exactly_75_tokens_through() -> None:
    # Given a prompt of exactly the window / When strictness is applied / Then nothing is raised
    body = {"prompt": "cat " * 75}
    assert measure_prompts(body).counts.prompt == 75
    refuse_truncated_prompts(measure_prompts(body))
    with pytest.raises(PromptTooLongError):
        refuse_truncated_prompts(measure_prompts({"prompt": "cat " * 76}))


def event(prefer: str | None) -> APIGatewayProxyEventV2:
    headers: dict[str, Any] = {} if prefer is None else {"prefer": prefer}
    return APIGatewayProxyEventV2({"headers": headers, "requestContext": {}})


@pytest.mark.parametrize(
    ("prefer", "strict", "wait"),
    [
        (None, False, 0),
        ("strict-tokens", True, 0),
        ("Strict-Tokens", True, 0),
        ("wait=10, strict-tokens", True, 10),
        ("strict-tokens, wait=5", True, 5),
        ("respond-async,strict-tokens;x=1", True, 0),
        ("wait=3", False, 3),
        ("strict-tokens-please", False, 0),
        ("not-strict-tokens", False, 0),
    ],
)
def test_strictness_is_an_rfc_7240_preference_combinable_with_wait(
    prefer: str | None, strict: bool, wait: int
) -> None:
    # Given a Prefer header / When it is read / Then strictness and the wait are told apart
    assert strict_tokens_requested(event(prefer)) is strict
    assert requested_wait(event(prefer)) == wait
