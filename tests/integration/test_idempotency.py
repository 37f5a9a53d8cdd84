"""Idempotency-Key on submit: Stripe's semantics, with the upstream's request count asserted."""

from __future__ import annotations

import threading
from typing import Any

import boto3
import pytest

from imagegateway.adapters.job_store import JobStore
from local.aws.resources import LocalStack
from local.fake_upstream import FakeUpstream
from tests.integration.test_submit_handler import executions
from tests.support.caches import clear_all
from tests.support.events import http_event_with_body, with_caller
from tests.support.stack import UPSTREAM_KEY, invoke, response_body, table_rows

BODY = {"model_id": "sd1.5", "prompt": "a lighthouse", "seed": 1}


def submit_with_key(
    stack: LocalStack, key: str, body: dict[str, Any] = BODY, caller: str | None = None
) -> dict[str, Any]:
    event = http_event_with_body(body)
    event["headers"]["idempotency-key"] = key
    if caller is not None:
        with_caller(event, caller)
    response: dict[str, Any] = invoke(stack, "submit", event)
    return response


def test_the_same_key_and_body_return_the_same_job_without_a_second_charge(
    stack: LocalStack, upstream: FakeUpstream
) -> None:
    # Given a job submitted with an Idempotency-Key
    first = submit_with_key(stack, "order-42")
    # When the client retries with the same key and body
    second = submit_with_key(stack, "order-42")
    # Then both answers are the same job: one row, one workflow (the one upstream POST)
    assert first["statusCode"] == second["statusCode"] == 202
    assert response_body(first) == response_body(second)
    assert len(table_rows(stack)) == 1
    assert executions(stack) == [response_body(first)["id"]]


def test_the_same_key_with_another_body_is_refused(
    stack: LocalStack, upstream: FakeUpstream
) -> None:
    submit_with_key(stack, "order-43")
    # When the key is reused for a different request
    reused = submit_with_key(stack, "order-43", {**BODY, "seed": 2})
    # Then it is a 422 naming the header, and no second job exists
    assert reused["statusCode"] == 422
    assert response_body(reused)["details"][0]["field"] == "Idempotency-Key"
    assert len(table_rows(stack)) == 1


def test_keys_belong_to_their_caller(stack: LocalStack, upstream: FakeUpstream) -> None:
    # Given two callers who happen to pick the same key
    alice = submit_with_key(stack, "k1")
    bob = submit_with_key(stack, "k1", caller="arn:aws:iam::123456789012:user/bob")
    # Then each gets a job of their own
    assert response_body(alice)["id"] != response_body(bob)["id"]
    assert len(table_rows(stack)) == 2


def test_a_concurrent_duplicate_gets_a_retryable_409(
    stack: LocalStack, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a first request held while it records its job
    entered, release = threading.Event(), threading.Event()
    real_create = JobStore.create

    def slow_create(self: JobStore, **kwargs: Any) -> Any:
        entered.set()
        assert release.wait(10)
        return real_create(self, **kwargs)

    monkeypatch.setattr(JobStore, "create", slow_create)
    results: dict[str, Any] = {}
    first = threading.Thread(target=lambda: results.update(first=submit_with_key(stack, "k2")))
    first.start()
    assert entered.wait(10)
    # When a duplicate arrives meanwhile
    duplicate = submit_with_key(stack, "k2")
    # Then it is told to retry, and makes no job of its own
    assert duplicate["statusCode"] == 409
    assert duplicate["headers"]["Retry-After"] == "1"
    release.set()
    first.join(10)
    assert results["first"]["statusCode"] == 202
    # And its retry, once the first finished, gets the first's job
    retry = submit_with_key(stack, "k2")
    assert response_body(retry)["id"] == response_body(results["first"])["id"]
    assert len(table_rows(stack)) == 1


@pytest.mark.parametrize("key", ["", " ", "x" * 256, "bad\x00key"])
def test_an_unusable_key_is_a_422(stack: LocalStack, upstream: FakeUpstream, key: str) -> None:
    response = submit_with_key(stack, key)
    assert response["statusCode"] == 422
    assert response_body(response)["details"][0]["field"] == "Idempotency-Key"
    assert table_rows(stack) == []


def test_a_submit_refused_before_any_job_existed_does_not_burn_the_key(
    stack: LocalStack, upstream: FakeUpstream
) -> None:
    # Given a first deploy whose upstream key is not stored yet: the submit is a 503
    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    secrets.delete_secret(SecretId=stack.secret_arn, ForceDeleteWithoutRecovery=True)
    clear_all()
    assert submit_with_key(stack, "k3")["statusCode"] == 503
    # When the operator stores the key and the client retries with the same key
    secrets.create_secret(Name=stack.secret_arn.split(":")[-1], SecretString="k")
    secrets.put_secret_value(SecretId=stack.secret_arn.split(":")[-1], SecretString=UPSTREAM_KEY)
    import os

    os.environ["UPSTREAM_API_KEY_SECRET_NAME"] = stack.secret_arn.split(":")[-1]
    clear_all()
    retry = submit_with_key(stack, "k3")
    # Then the retry really submits
    assert retry["statusCode"] == 202
    assert len(table_rows(stack)) == 1
