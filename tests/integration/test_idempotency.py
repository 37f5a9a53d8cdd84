"""Idempotency-Key on submit: Stripe's semantics, with the upstream's request count asserted."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from imagegateway.models import Text2ImageRequest, UpstreamAnswer
from imagegateway.upstream import UpstreamClient
from local.aws_stack import LocalStack
from local.fake_upstream import FakeUpstream
from tests.support.events import http_event_with_body, with_caller
from tests.support.stack import invoke, response_body, table_rows

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
    # Then both answers are the same job, and the upstream was called once
    assert first["statusCode"] == second["statusCode"] == 202
    assert response_body(first) == response_body(second)
    assert upstream.stats()["submits"] == 1
    assert len(table_rows(stack)) == 1


def test_the_same_key_with_another_body_is_refused(
    stack: LocalStack, upstream: FakeUpstream
) -> None:
    submit_with_key(stack, "order-43")
    # When the key is reused for a different request
    reused = submit_with_key(stack, "order-43", {**BODY, "seed": 2})
    # Then it is a 422 naming the header, and nothing more reached the upstream
    assert reused["statusCode"] == 422
    assert response_body(reused)["details"][0]["field"] == "Idempotency-Key"
    assert upstream.stats()["submits"] == 1


def test_keys_belong_to_their_caller(stack: LocalStack, upstream: FakeUpstream) -> None:
    # Given two callers who happen to pick the same key
    alice = submit_with_key(stack, "k1")
    bob = submit_with_key(stack, "k1", caller="arn:aws:iam::123456789012:user/bob")
    # Then each gets a job of their own
    assert response_body(alice)["id"] != response_body(bob)["id"]
    assert upstream.stats()["submits"] == 2


def test_a_concurrent_duplicate_gets_a_retryable_409(
    stack: LocalStack, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a first request held inside its upstream call
    entered, release = threading.Event(), threading.Event()
    real_submit = UpstreamClient.submit

    def slow_submit(self: UpstreamClient, request: Text2ImageRequest) -> UpstreamAnswer:
        entered.set()
        assert release.wait(10)
        return real_submit(self, request)

    monkeypatch.setattr(UpstreamClient, "submit", slow_submit)
    results: dict[str, Any] = {}
    first = threading.Thread(target=lambda: results.update(first=submit_with_key(stack, "k2")))
    first.start()
    assert entered.wait(10)
    # When a duplicate arrives meanwhile
    duplicate = submit_with_key(stack, "k2")
    # Then it is told to retry, and makes no upstream call of its own
    assert duplicate["statusCode"] == 409
    assert duplicate["headers"]["Retry-After"] == "1"
    release.set()
    first.join(10)
    assert results["first"]["statusCode"] == 202
    # And its retry, once the first finished, gets the first's job
    retry = submit_with_key(stack, "k2")
    assert response_body(retry)["id"] == response_body(results["first"])["id"]
    assert upstream.stats()["submits"] == 1


@pytest.mark.parametrize("key", ["", " ", "x" * 256, "bad\x00key"])
def test_an_unusable_key_is_a_422(stack: LocalStack, upstream: FakeUpstream, key: str) -> None:
    response = submit_with_key(stack, key)
    assert response["statusCode"] == 422
    assert response_body(response)["details"][0]["field"] == "Idempotency-Key"
    assert upstream.stats()["submits"] == 0


def test_an_unreachable_upstream_does_not_burn_the_key(
    stack: LocalStack, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the upstream cannot be reached on the first attempt
    monkeypatch.setenv("UPSTREAM_BASE_URL", "http://127.0.0.1:9")
    from tests.support.caches import clear_all

    clear_all()
    assert submit_with_key(stack, "k3")["statusCode"] == 502
    # When the client retries with the same key once it is back
    monkeypatch.setenv("UPSTREAM_BASE_URL", upstream.base_url)
    clear_all()
    retry = submit_with_key(stack, "k3")
    # Then the retry really submits
    assert retry["statusCode"] == 202
    assert upstream.stats()["submits"] == 1
