"""The upstream key never leaves Secrets Manager: run jobs of every kind with a random key, then
search every log line, response, table row, stored object and execution history for it."""

from __future__ import annotations

import io
import json
import logging
import secrets
from typing import Any

import boto3
import pytest

from imagegateway.platform.observability import logger
from local.aws.resources import LocalStack
from local.fake_upstream import FakeUpstream
from tests.support.events import http_event_with_body, status_event
from tests.support.stack import invoke, wait_for_execution


@pytest.fixture
def random_key(stack: LocalStack, upstream: FakeUpstream) -> str:
    key = f"sk-{secrets.token_hex(16)}"
    boto3.client("secretsmanager", region_name="us-east-1").put_secret_value(
        SecretId=stack.secret_arn, SecretString=key
    )
    upstream.api_key = key
    return key


def test_the_random_key_appears_in_no_log_response_row_object_or_history(
    stack: LocalStack,
    upstream: FakeUpstream,
    invocations: list[dict[str, Any]],
    random_key: str,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    # DEBUG everywhere: with LogLevel=DEBUG the Lambda runtime sets the root logger to DEBUG,
    # so botocore's wire dumps (GetSecretValue's body) would be on unless pinned above it.
    caplog.set_level(logging.DEBUG)
    # Every structured log line, with all its keys, as Lambda would ship it.
    structured = io.StringIO()
    handler = logging.StreamHandler(structured)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    request.addfinalizer(lambda: (logger.removeHandler(handler), logger.setLevel(logging.WARNING)))
    seen: list[str] = []
    # Given jobs that succeed, fail upstream, are refused, and fail on downloads
    job_ids = []
    for model in ["sd1.5", "fake-failure", "fake-instant", "fake-broken-image", "fake-reject"]:
        response = invoke(stack, "submit", http_event_with_body({"model_id": model, "prompt": "p"}))
        seen.append(json.dumps(response))
        job_ids.append(json.loads(response["body"])["id"])
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    for job_id in job_ids[:-1]:
        wait_for_execution(job_id, stack)
        arn = stack.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{job_id}"
        seen.append(json.dumps(sfn.get_execution_history(executionArn=arn), default=str))
        seen.append(json.dumps(sfn.describe_execution(executionArn=arn), default=str))
    for job_id in job_ids:
        seen.append(json.dumps(invoke(stack, "job_status", status_event(job_id))))
    # And a request made while the upstream refuses the key (its error path logs the most)
    upstream.api_key = "another-key"
    seen.append(
        json.dumps(invoke(stack, "submit", http_event_with_body({"model_id": "m", "prompt": "p"})))
    )
    # When everything the gateway wrote is gathered
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    for table in stack.table_names.values():
        seen.append(json.dumps(dynamodb.scan(TableName=table)["Items"], default=str))
    s3 = boto3.client("s3", region_name="us-east-1")
    for item in s3.list_objects_v2(Bucket=stack.bucket_name).get("Contents", []):
        head = s3.head_object(Bucket=stack.bucket_name, Key=item["Key"])
        seen.append(json.dumps(head, default=str))
    seen.append(json.dumps(invocations, default=str))
    captured = capfd.readouterr()
    seen += [captured.out, captured.err, caplog.text, structured.getvalue()]
    # Then the key is nowhere, while the logs did record the jobs
    everything = "\n".join(seen)
    assert random_key not in everything
    # (tasks of concurrent executions share the process's logger keys here, so not every
    # job's id need be on a line; in Lambda each environment runs one invocation at a time)
    assert any(job_id in structured.getvalue() for job_id in job_ids)
