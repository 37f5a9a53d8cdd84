"""Prompt token counts through the real submit and status functions (moto, fake upstream): every
answer and view carries them, and `Prefer: strict-tokens` refuses a prompt the model would cut."""

from __future__ import annotations

import json
from typing import Any

import boto3

from local.aws.resources import LocalStack
from local.fake_upstream import FakeUpstream
from tests.support.clip_reference import LONG
from tests.support.events import http_event_with_body, status_event
from tests.support.stack import invoke, job_row, response_body, table_rows

# 95 tokens by OpenAI's SimpleTokenizer (tests/support/clip_reference_ids.json).
LONG_PROMPT = LONG[-1]
IGNORED = (
    "and moebius , dramatic lighting , wide angle lens , rich colors , highly detailed "
    "textures , sharp focus"
)


def submit(stack: LocalStack, body: dict[str, Any], prefer: str | None = None) -> dict[str, Any]:
    event = http_event_with_body(body)
    if prefer is not None:
        event["headers"]["prefer"] = prefer
    response: dict[str, Any] = invoke(stack, "submit", event)
    return response


def executions(stack: LocalStack) -> list[str]:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    listing = sfn.list_executions(stateMachineArn=stack.state_machine_arn)["executions"]
    return [execution["name"] for execution in listing]


def test_a_long_prompt_is_accepted_with_its_exact_count_and_a_warning_in_answer_and_view(
    stack: LocalStack, upstream: FakeUpstream
) -> None:
    # Given a 95-token prompt and a short negative prompt
    body = {"model_id": "sd1.5", "prompt": LONG_PROMPT, "negative_prompt": "blurry, lowres"}
    # When it is submitted without strictness
    response = submit(stack, body)
    # Then it is accepted (202) with the counts, the window and a warning naming the ignored words
    answer = response_body(response)
    assert response["statusCode"] == 202
    assert answer["tokens"] == {"prompt": 95, "negative_prompt": 4, "limit": 75}
    assert answer["warnings"] == [
        f"prompt: 95 tokens, over the 75 the model reads; ignored: '{IGNORED}'"
    ]
    # And the job row keeps them, so the status view shows the same
    row = job_row(stack, answer["id"])
    assert row is not None
    assert row["tokens"] == {"prompt": 95, "negative_prompt": 4, "limit": 75}
    view = response_body(invoke(stack, "job_status", status_event(answer["id"])))
    assert view["status"] == "PENDING"
    assert (view["tokens"], view["warnings"]) == (answer["tokens"], answer["warnings"])


def test_a_prompt_within_the_window_is_answered_with_its_counts_and_no_warning(
    stack: LocalStack, upstream: FakeUpstream
) -> None:
    # Given a short prompt without a negative prompt, and strictness asked for
    body = {"model_id": "sd1.5", "prompt": "a lighthouse on a cliff at dawn, photorealistic"}
    # When it is submitted
    response = submit(stack, body, prefer="strict-tokens")
    # Then it is accepted with its counts, no warnings, and the preference said to be applied
    answer = response_body(response)
    assert response["statusCode"] == 202
    assert answer["tokens"] == {"prompt": 10, "negative_prompt": 0, "limit": 75}
    assert "warnings" not in answer
    assert response["headers"]["Preference-Applied"] == "strict-tokens"
    view = response_body(invoke(stack, "job_status", status_event(answer["id"])))
    assert view["tokens"] == answer["tokens"]
    assert "warnings" not in view


def test_strict_tokens_refuses_a_long_prompt_with_a_422_and_stores_and_sends_nothing(
    stack: LocalStack, upstream: FakeUpstream
) -> None:
    # Given a 95-token prompt, and a caller asking for strictness alongside a wait
    body = {"model_id": "sd1.5", "prompt": LONG_PROMPT}
    # When it is submitted
    response = submit(stack, body, prefer="wait=5, strict-tokens")
    # Then it is a 422 in the contract's error shape, naming the field and what would be lost
    answer = response_body(response)
    assert response["statusCode"] == 422
    assert answer["status"] == "FAILURE"
    assert answer["error_code"] == "PROMPT_TOO_LONG"
    assert answer["error"] == (
        "invalid request: prompt: 95 tokens, over the 75 the model reads (Prefer: strict-tokens)"
    )
    assert answer["details"] == [
        {
            "field": "prompt",
            "message": f"95 tokens, over the 75 the model reads; ignored: '{IGNORED}'",
        }
    ]
    # And no job row, no execution, no upstream call: nothing was paid for
    assert table_rows(stack) == []
    assert executions(stack) == []
    assert upstream.stats()["submits"] == 0


def test_strict_tokens_names_the_negative_prompt_when_it_is_the_one_over(
    stack: LocalStack, upstream: FakeUpstream
) -> None:
    body = {"model_id": "sd1.5", "prompt": "a fox", "negative_prompt": LONG_PROMPT}
    response = submit(stack, body, prefer="strict-tokens")
    assert response["statusCode"] == 422
    assert [d["field"] for d in response_body(response)["details"]] == ["negative_prompt"]


def test_an_idempotent_replay_carries_the_same_counts(
    stack: LocalStack, upstream: FakeUpstream
) -> None:
    # Given a long prompt submitted with an Idempotency-Key
    event = http_event_with_body({"model_id": "sd1.5", "prompt": LONG_PROMPT})
    event["headers"]["idempotency-key"] = "tokens-1"
    first = response_body(invoke(stack, "submit", event))
    # When the same request is sent again / Then the same job, with the same counts and warning
    again = response_body(invoke(stack, "submit", json.loads(json.dumps(event))))
    assert again["id"] == first["id"]
    assert again["tokens"] == first["tokens"] == {"prompt": 95, "negative_prompt": 0, "limit": 75}
    assert again["warnings"] == first["warnings"]
