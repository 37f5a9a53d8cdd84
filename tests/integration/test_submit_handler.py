"""The submit function, driven by its events/ sample, against moto and the fake upstream."""

from __future__ import annotations

import json

import boto3
import pytest

from local.aws.resources import LocalStack
from local.fake_upstream import FakeUpstream
from tests.support.events import http_event_with_body, load_event
from tests.support.stack import invoke, job_row, response_body, table_rows


def executions(stack: LocalStack) -> list[str]:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    return [
        e["name"]
        for e in sfn.list_executions(stateMachineArn=stack.state_machine_arn)["executions"]
    ]


def test_a_valid_request_is_recorded_and_started_without_waiting_on_the_upstream(
    stack: LocalStack, upstream: FakeUpstream
) -> None:
    # Given the sample submit event (the upstream page's own example)
    event = load_event("submit")
    # When the submit function handles it
    response = invoke(stack, "submit", event)
    # Then the caller gets 202 PENDING with a job id at once
    body = response_body(response)
    assert response["statusCode"] == 202
    assert body["status"] == "PENDING"
    job_id = body["id"]
    # And the upstream was not called here: the workflow's first task sends it
    assert upstream.stats()["submits"] == 0
    # And the job row is PENDING, owned by the caller's role, with the request and a run token
    row = job_row(stack, job_id)
    assert row is not None
    assert row["status"] == "PENDING"
    assert "upstream_id" not in row
    assert row["owner"] == "iam:AROA3XFRBF535EXAMPLE1"
    assert json.loads(row["request"]) == json.loads(event["body"])
    assert len(row["run_token"]) >= 16
    # And the workflow was started under the job id
    assert executions(stack) == [job_id]


def test_without_an_upstream_key_a_submit_is_a_503_that_stores_nothing(
    stack: LocalStack, upstream: FakeUpstream
) -> None:
    # Given a first deploy: the key secret exists but holds no value yet
    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    empty = secrets.create_secret(Name="empty-upstream-key")["ARN"]
    import os

    os.environ["UPSTREAM_API_KEY_SECRET_NAME"] = empty
    from tests.support.caches import clear_all

    clear_all()
    try:
        # When a job is submitted
        response = invoke(stack, "submit", load_event("submit"))
    finally:
        os.environ["UPSTREAM_API_KEY_SECRET_NAME"] = stack.secret_arn
    # Then the caller gets a clear 503 with a code, not an unhandled 500
    answer = response_body(response)
    assert response["statusCode"] == 503
    assert answer["error_code"] == "UPSTREAM_NOT_CONFIGURED"
    assert response["headers"]["Retry-After"]
    # And no stray PENDING row, no execution, no upstream call
    assert table_rows(stack) == []
    assert executions(stack) == []
    assert upstream.stats()["submits"] == 0


def test_a_workflow_that_cannot_start_is_a_503_at_once_and_the_job_ends_told(
    stack: LocalStack, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a state machine the submit function cannot start (a first deploy whose role lacks
    # states:StartExecution, a wrong ARN, Step Functions down)
    missing = stack.state_machine_arn.replace(":stateMachine:", ":stateMachine:missing-")
    monkeypatch.setenv("STATE_MACHINE_ARN", missing)
    from tests.support.caches import clear_all

    clear_all()
    # When a job is submitted
    response = invoke(stack, "submit", load_event("submit"))
    # Then the caller hears it now (a 503 to retry), not as a PENDING job that ends 17 min later
    answer = response_body(response)
    assert response["statusCode"] == 503, answer
    assert answer["error_code"] == "WORKFLOW_NOT_STARTED"
    assert response["headers"]["Retry-After"]
    # And the job it recorded has ended, with that reason, and nothing reached the upstream
    (row,) = table_rows(stack)
    assert (row["status"], row["error_code"]) == ("FAILURE", "WORKFLOW_NOT_STARTED")
    assert answer["id"] == row["job_id"]
    assert upstream.stats()["submits"] == 0


def test_an_internal_error_answers_a_stable_message_without_internal_names(
    stack: LocalStack, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the jobs table is unreachable (a botocore error naming the table and the account)
    monkeypatch.setenv("JOBS_TABLE_NAME", "no-such-table-arn-aws-iam-123456789012")
    from tests.support.caches import clear_all

    clear_all()
    # When a job is submitted
    response = invoke(stack, "submit", load_event("submit"))
    # Then the caller gets a 500 with a code and words written for callers
    answer = response_body(response)
    assert response["statusCode"] == 500
    assert answer["error_code"] == "INTERNAL_ERROR"
    assert "no-such-table" not in response["body"]
    assert "ResourceNotFound" not in response["body"]


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


@pytest.mark.parametrize(
    "webhook_url", ["ftp://hooks.example.com/x", "https://user:pw@hooks.example.com/x", "/relative"]
)
def test_a_bad_webhook_url_is_a_422_naming_it_and_stores_nothing(
    stack: LocalStack, upstream: FakeUpstream, webhook_url: str
) -> None:
    # Given a valid request whose webhook_url query parameter is not an absolute URL we POST to
    event = http_event_with_body({"model_id": "sd1.5", "prompt": "x"})
    event["queryStringParameters"] = {"webhook_url": webhook_url}
    event["rawQueryString"] = f"webhook_url={webhook_url}"
    # When it is submitted / Then a 422 names the parameter, and nothing is stored or sent
    response = invoke(stack, "submit", event)
    answer = response_body(response)
    assert response["statusCode"] == 422, answer
    assert [d["field"] for d in answer["details"]] == ["webhook_url"]
    assert upstream.stats()["submits"] == 0
    assert table_rows(stack) == []


def test_a_webhook_url_is_kept_on_the_job_for_its_end(
    stack: LocalStack, upstream: FakeUpstream
) -> None:
    event = http_event_with_body({"model_id": "sd1.5", "prompt": "x"})
    event["queryStringParameters"] = {"webhook_url": "https://hooks.example.com/images"}
    response = invoke(stack, "submit", event)
    assert response["statusCode"] == 202
    (row,) = table_rows(stack)
    assert row["callbacks"] == {"webhook_url": "https://hooks.example.com/images"}


def test_a_body_webhook_is_kept_on_the_job_and_not_in_its_upstream_request(
    stack: LocalStack, upstream: FakeUpstream
) -> None:
    # Given a body with the family's `webhook` field
    hook = "https://hooks.example.com/images"
    event = http_event_with_body({"model_id": "sd1.5", "prompt": "x", "webhook": hook})
    # When it is submitted
    response = invoke(stack, "submit", event)
    # Then the job keeps it as its webhook, and the request it sends upstream does not carry it
    assert response["statusCode"] == 202, response["body"]
    (row,) = table_rows(stack)
    assert row["callbacks"] == {"webhook_url": hook}
    assert json.loads(row["request"]) == {"model_id": "sd1.5", "prompt": "x"}


@pytest.mark.parametrize(
    ("query", "accepted"),
    [("https://hooks.example.com/images", True), ("https://other.example.com/x", False)],
)
def test_a_body_webhook_and_a_webhook_url_must_agree(
    stack: LocalStack, upstream: FakeUpstream, query: str, accepted: bool
) -> None:
    # Given a body webhook and a webhook_url query parameter
    event = http_event_with_body(
        {"model_id": "sd1.5", "prompt": "x", "webhook": "https://hooks.example.com/images"}
    )
    event["queryStringParameters"] = {"webhook_url": query}
    # When it is submitted
    response = invoke(stack, "submit", event)
    # Then the same URL twice is one webhook; two URLs are a 422 naming the body's field
    if accepted:
        assert response["statusCode"] == 202, response["body"]
        return
    answer = response_body(response)
    assert response["statusCode"] == 422, answer
    assert [d["field"] for d in answer["details"]] == ["webhook"]
    assert answer["error"].startswith("invalid request: webhook:")
    assert table_rows(stack) == []
