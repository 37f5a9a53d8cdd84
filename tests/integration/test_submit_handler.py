"""The submit function, driven by its events/ sample, against moto and the fake upstream."""

from __future__ import annotations

import json
import socket

import boto3
import pytest

from local.aws_stack import LocalStack
from local.fake_upstream import FakeUpstream
from tests.support.events import http_event_with_body, load_event
from tests.support.stack import invoke, job_row, response_body, table_rows


def executions(stack: LocalStack) -> list[str]:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    return [
        e["name"]
        for e in sfn.list_executions(stateMachineArn=stack.state_machine_arn)["executions"]
    ]


def test_a_valid_request_is_accepted_once_recorded_and_started(
    stack: LocalStack, upstream: FakeUpstream
) -> None:
    # Given the sample submit event (the upstream page's own example)
    event = load_event("submit")
    # When the submit function handles it
    response = invoke(stack, "submit", event)
    # Then the caller gets 202 PENDING with a job id
    body = response_body(response)
    assert response["statusCode"] == 202
    assert body["status"] == "PENDING"
    job_id = body["id"]
    # And the upstream was called exactly once, with the caller's body
    assert upstream.stats()["submits"] == 1
    # And the job row is PENDING, owned by the IAM caller, with the upstream's id
    row = job_row(stack, job_id)
    assert row is not None
    assert row["status"] == "PENDING"
    assert row["upstream_id"]
    assert row["owner"] == event["requestContext"]["authorizer"]["iam"]["userArn"]
    assert json.loads(row["request"]) == json.loads(event["body"])
    # And the workflow was started under the job id
    assert executions(stack) == [job_id]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model_id": "sd1.5", "prompt": "x", "num_inference_steps": 101}, "num_inference_steps"),
        ({"model_id": "sd1.5", "prompt": "x", "samples": 5}, "samples"),
        ({"model_id": "sd1.5", "prompt": "x", "guidance_scale": 0.5}, "guidance_scale"),
        (
            {"model_id": "sd1.5", "prompt": "x", "lora_models": ["a"], "lora_weights": []},
            "lora_weights",
        ),
        ({"model_id": "sd1.5", "prompt": "x", "colour": "red"}, "colour"),
        ({"prompt": "x"}, "model_id"),
    ],
)
def test_a_bad_request_is_a_422_naming_the_field_and_reaches_nobody(
    stack: LocalStack, upstream: FakeUpstream, body: dict[str, object], field: str
) -> None:
    # Given a request with one wrong field
    # When it is submitted
    response = invoke(stack, "submit", http_event_with_body(body))
    # Then the answer is 422 in the contract's shape, naming the field
    answer = response_body(response)
    assert response["statusCode"] == 422
    assert answer["status"] == "FAILURE"
    assert field in answer["error"]
    assert [d["field"] for d in answer["details"]] == [field]
    assert answer["details"][0]["message"]
    # And nothing reached the upstream, nothing was stored, nothing started
    assert upstream.stats()["submits"] == 0
    assert table_rows(stack) == []
    assert executions(stack) == []


def test_malformed_json_is_a_400(stack: LocalStack, upstream: FakeUpstream) -> None:
    response = invoke(stack, "submit", http_event_with_body(None, raw='{"model_id": "sd1.5",'))
    assert response["statusCode"] == 400
    assert response_body(response)["status"] == "FAILURE"
    assert upstream.stats()["submits"] == 0
    assert table_rows(stack) == []


def test_a_body_without_content_type_is_read_as_json(
    stack: LocalStack, upstream: FakeUpstream
) -> None:
    # Given the upstream's own Python example, which sends data=json.dumps(...) with no header
    event = http_event_with_body(load_event("text2image_request"), content_type=None)
    # When it is submitted
    response = invoke(stack, "submit", event)
    # Then it is accepted like any JSON body
    assert response["statusCode"] == 202


def test_an_upstream_refusal_is_a_failure_answer_with_its_message(
    stack: LocalStack, upstream: FakeUpstream
) -> None:
    # Given a model the upstream does not know
    event = http_event_with_body({"model_id": "fake-reject", "prompt": "a fox"})
    # When it is submitted
    response = invoke(stack, "submit", event)
    # Then the caller gets the upstream's FAILURE and message, and the job is FAILURE too
    answer = response_body(response)
    assert response["statusCode"] == 200
    assert answer["status"] == "FAILURE"
    assert "fake-reject" in answer["error"]
    row = job_row(stack, answer["id"])
    assert row is not None
    assert (row["status"], row["error_code"]) == ("FAILURE", "UPSTREAM_REJECTED")
    assert executions(stack) == []


def test_an_unreachable_upstream_is_a_502_and_the_job_is_failed(
    stack: LocalStack, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an upstream address where nothing listens
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    monkeypatch.setenv("UPSTREAM_BASE_URL", f"http://127.0.0.1:{closed_port}")
    from tests.support.caches import clear_all

    clear_all()
    # When a job is submitted
    response = invoke(stack, "submit", load_event("submit"))
    # Then the caller gets 502 with the job id, and the job is FAILURE, not PENDING
    answer = response_body(response)
    assert response["statusCode"] == 502
    assert answer["status"] == "FAILURE"
    row = job_row(stack, answer["id"])
    assert row is not None
    assert (row["status"], row["error_code"]) == ("FAILURE", "UPSTREAM_UNAVAILABLE")


def test_a_wrong_upstream_key_is_a_502_that_does_not_blame_the_caller(
    stack: LocalStack, upstream: FakeUpstream
) -> None:
    # Given the secret holds a key the upstream refuses
    boto3.client("secretsmanager", region_name="us-east-1").put_secret_value(
        SecretId=stack.secret_arn, SecretString="wrong-key"
    )
    # When a job is submitted
    response = invoke(stack, "submit", load_event("submit"))
    # Then the answer is 502 and names the gateway's credentials, never the key itself
    assert response["statusCode"] == 502
    assert "API key" in response_body(response)["error"]
    assert "wrong-key" not in response["body"]


def test_an_upstream_that_takes_the_post_but_never_answers_is_a_504(
    stack: LocalStack, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an upstream that accepts the connection and then says nothing
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        monkeypatch.setenv("UPSTREAM_BASE_URL", f"http://127.0.0.1:{silent.getsockname()[1]}")
        monkeypatch.setenv("UPSTREAM_READ_TIMEOUT_SECONDS", "1")
        from tests.support.caches import clear_all

        clear_all()
        # When a job is submitted
        response = invoke(stack, "submit", load_event("submit"))
    finally:
        silent.close()
    # Then the caller gets 504 with the job id: the job may exist upstream, so it is not retried
    answer = response_body(response)
    assert response["statusCode"] == 504
    assert "may have accepted" in answer["error"]
    row = job_row(stack, answer["id"])
    assert row is not None
    assert (row["status"], row["error_code"]) == ("FAILURE", "UPSTREAM_TIMEOUT")
