"""Trust between callers over the local stack (issue #20): who owns a queued or evented request,
whose secret signs a webhook, and what a second request with the same idempotency key hears.
Only the contract's names are used (out/stack-outputs.json, the envelope, the routes, the
local-only `X-Local-Caller` header and `LocalSender` message attribute)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.e2e.conftest import Gateway
from tests.support.webhook_receivers import Delivery, recording_receiver

pytestmark = pytest.mark.network


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def send_as(gateway: Gateway, sender: str | None, envelope: dict[str, Any]) -> None:
    """Put an envelope on the request queue as the local account, or as IAM user `sender`."""
    attributes = {"LocalSender": {"DataType": "String", "StringValue": sender}} if sender else {}
    gateway.aws("sqs").send_message(
        QueueUrl=gateway.outputs()["RequestQueueUrl"],
        MessageBody=json.dumps(envelope),
        MessageAttributes=attributes,
    )


def by_reference(reference: str) -> Any:
    return lambda event: event["detail"].get("reference") == reference


def secret_of(gateway: Gateway, caller: str | None) -> str:
    headers = {"X-Local-Caller": caller} if caller else {}
    answer = gateway.session.get(gateway.url + "/v1/webhooks/secret", headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    secret: str = answer.json()["secret"]
    return secret


def job_ids_of(gateway: Gateway, caller: str | None) -> set[str]:
    headers = {"X-Local-Caller": caller} if caller else {}
    answer = gateway.session.get(gateway.url + "/v1/jobs", headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    return {job["id"] for job in answer.json()["jobs"]}


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[Delivery]]]:
    with recording_receiver("/hooks") as recorded:
        yield recorded


def deliveries(
    received: list[tuple[dict[str, str], bytes]], count: int, timeout: float = 60
) -> list[tuple[dict[str, str], bytes]]:
    deadline = time.monotonic() + timeout
    while len(received) < count:
        assert time.monotonic() < deadline, f"{len(received)} of {count} webhooks"
        time.sleep(0.25)
    return received[:count]


# ---------------------------------------------------------------- finding 4: ownership


def test_two_senders_with_one_key_get_a_job_each_told_on_their_own_references(
    gateway: Gateway,
) -> None:
    # Given two teams whose pipelines happen to send one request with one idempotency key
    key = unique("key")
    request = {"model_id": "sd1.5", "prompt": "a shared prompt"}
    team_a, team_b = unique("team-a"), unique("team-b")
    ref_a, ref_b = unique("ref-a"), unique("ref-b")
    send_as(gateway, team_a, {"request": request, "idempotency_key": key, "reference": ref_a})
    send_as(gateway, team_b, {"request": request, "idempotency_key": key, "reference": ref_b})
    # When both completions arrive
    done_a = gateway.completion(by_reference(ref_a))["detail"]
    done_b = gateway.completion(by_reference(ref_b))["detail"]
    # Then each team has a job of its own, listed by that team over HTTP and by no other
    assert (done_a["status"], done_b["status"]) == ("SUCCESS", "SUCCESS")
    assert done_a["job_id"] != done_b["job_id"]
    assert done_a["job_id"] in job_ids_of(gateway, team_a)
    assert done_b["job_id"] in job_ids_of(gateway, team_b)
    assert done_a["job_id"] not in job_ids_of(gateway, team_b)
    assert done_b["job_id"] not in job_ids_of(gateway, None)


def test_a_bus_request_belongs_to_the_account_that_put_it(gateway: Gateway) -> None:
    # Given a request put on the bus (locally, by the local account), claiming nothing
    reference = unique("evt")
    gateway.aws("events").put_events(
        Entries=[
            {
                "EventBusName": gateway.outputs()["EventBusName"],
                "Source": "team.pipeline",
                "DetailType": "Image Generation Requested",
                "Detail": json.dumps(
                    {"request": {"model_id": "sd1.5", "prompt": "p"}, "reference": reference}
                ),
            }
        ]
    )
    # When it has ended
    detail = gateway.completion(by_reference(reference))["detail"]
    assert detail["status"] == "SUCCESS", detail
    job_id = detail["job_id"]
    # Then it is the account's job (the local caller by default), not a named user's
    assert job_id in job_ids_of(gateway, None)
    assert job_id not in job_ids_of(gateway, unique("someone"))


# ---------------------------------------------------------------- finding 2: a secret each


def test_each_caller_has_its_own_webhook_secret_and_its_webhooks_verify_with_it_alone(
    gateway: Gateway, receiver: tuple[str, list[Delivery]]
) -> None:
    # Given two callers' secrets
    url, received = receiver
    alice, bob = unique("alice"), unique("bob")
    alice_secret, bob_secret = secret_of(gateway, alice), secret_of(gateway, bob)
    assert alice_secret.startswith("whsec_")
    assert alice_secret != bob_secret
    # And the local account's is the stack's WebhookSigningSecret (the local queue's and bus's)
    assert secret_of(gateway, None) == gateway.outputs()["WebhookSigningSecret"]
    # When alice queues a request with a webhook
    reference = unique("hook")
    send_as(
        gateway,
        alice,
        {
            "request": {"model_id": "fake-instant", "prompt": "p"},
            "reference": reference,
            "webhook_url": url,
        },
    )
    [(headers, body)] = deliveries(received, 1)
    # Then it verifies with alice's secret, and neither with bob's nor the local account's
    assert Webhook(alice_secret).verify(body, headers)["data"]["reference"] == reference
    for other in (bob_secret, gateway.outputs()["WebhookSigningSecret"]):
        with pytest.raises(WebhookVerificationError):
            Webhook(other).verify(body, headers)


# ---------------------------------------------------------------- finding 5: duplicates


def test_a_keyed_duplicate_is_the_same_job_and_hears_of_it_on_its_own_callbacks(
    gateway: Gateway, receiver: tuple[str, list[Delivery]]
) -> None:
    # Given a request, and the same request with the same key again (a retried task, say),
    # each with its own reference and webhook
    url, received = receiver
    key, model = unique("key"), unique("model-once")
    request = {"model_id": model, "prompt": "p"}
    first, second = unique("first"), unique("second")
    send_as(
        gateway,
        None,
        {"request": request, "idempotency_key": key, "reference": first, "webhook_url": url + "/1"},
    )
    send_as(
        gateway,
        None,
        {
            "request": request,
            "idempotency_key": key,
            "reference": second,
            "webhook_url": url + "/2",
        },
    )
    # When the job has ended
    told_first = gateway.completion(by_reference(first))["detail"]
    told_second = gateway.completion(by_reference(second))["detail"]
    # Then both references were told of one job, sent upstream once, and both webhooks came
    assert told_first["job_id"] == told_second["job_id"]
    assert (told_first["status"], told_second["status"]) == ("SUCCESS", "SUCCESS")
    assert gateway.upstream_stats()["submits_by_model"][model] == 1
    hooks = deliveries(received, 2)
    references = {json.loads(body)["data"]["reference"] for _, body in hooks}
    assert references == {first, second}
    assert len({headers["webhook-id"] for headers, _ in hooks}) == 2


def test_a_keyed_duplicate_after_the_job_ended_is_told_at_once(gateway: Gateway) -> None:
    # Given a job that has ended
    key = unique("key")
    request = {"model_id": "fake-instant", "prompt": "p"}
    first, late = unique("first"), unique("late")
    send_as(gateway, None, {"request": request, "idempotency_key": key, "reference": first})
    job_id = gateway.completion(by_reference(first))["detail"]["job_id"]
    # When the same request with the same key comes again, with its own reference
    send_as(gateway, None, {"request": request, "idempotency_key": key, "reference": late})
    # Then its reference is told of the same job
    told = gateway.completion(by_reference(late))["detail"]
    assert (told["job_id"], told["status"]) == (job_id, "SUCCESS")


def test_the_same_key_with_another_body_is_refused_on_its_own_callbacks(gateway: Gateway) -> None:
    # Given a request with a key
    key = unique("key")
    first, other = unique("first"), unique("other")
    send_as(
        gateway,
        None,
        {
            "request": {"model_id": "sd1.5", "prompt": "p"},
            "idempotency_key": key,
            "reference": first,
        },
    )
    gateway.completion(by_reference(first))
    # When the same key comes with another request
    send_as(
        gateway,
        None,
        {
            "request": {"model_id": "sd1.5", "prompt": "q"},
            "idempotency_key": key,
            "reference": other,
        },
    )
    # Then that request hears a Failed event with a code saying so, and no job
    detail = gateway.completion(by_reference(other))["detail"]
    assert (detail["status"], detail["error_code"]) == ("FAILURE", "IDEMPOTENCY_KEY_REUSED")
    assert "job_id" not in detail


def test_an_http_retry_with_the_same_key_and_its_own_webhook_hears_of_the_one_job(
    gateway: Gateway, receiver: tuple[str, list[Delivery]]
) -> None:
    # Given an HTTP request with an Idempotency-Key and a webhook, sent again with the same key
    # and body but another webhook (a client that lost the first answer and retried)
    url, received = receiver
    key, model = unique("key"), unique("model-once")
    answers = [
        gateway.session.post(
            gateway.url + "/sd/text2image/v1",
            params={"webhook_url": f"{url}/{n}"},
            json={"model_id": model, "prompt": "p"},
            headers={"Idempotency-Key": key},
            timeout=30,
        )
        for n in (1, 2)
    ]
    # When the job has ended
    job_ids = {answer.json()["id"] for answer in answers}
    assert len(job_ids) == 1, [answer.text for answer in answers]
    hooks = deliveries(received, 2)
    # Then both webhooks told of the one job, each with an id of its own, and one POST went up
    assert {json.loads(body)["data"]["job_id"] for _, body in hooks} == job_ids
    assert len({headers["webhook-id"] for headers, _ in hooks}) == 2
    assert gateway.upstream_stats()["submits_by_model"][model] == 1
