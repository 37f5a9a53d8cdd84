"""The fixed-seed result cache over the local stack: an identical request with a seed is served
from the caller's earlier job (no upstream POST, its own copies of the images), never across
callers, never without a seed, and never when the caller says no-cache."""

from __future__ import annotations

import json
import uuid
from typing import Any

import requests

from tests.e2e.conftest import Gateway


def request_with_seed(model: str, seed: int | None = 1234) -> dict[str, Any]:
    body: dict[str, Any] = {"model_id": model, "prompt": "a red fox", "width": 256, "height": 256}
    if seed is not None:
        body["seed"] = seed
    return body


def run(gateway: Gateway, body: dict[str, Any], **options: Any) -> dict[str, Any]:
    answer = gateway.submit(body, **options)
    assert answer.status_code in (200, 202), answer.text
    view: dict[str, Any] = answer.json()
    if view["status"] == "PENDING":
        view = gateway.wait(view["id"], caller=options.get("caller"))
    assert view["status"] == "SUCCESS", view
    return view


def posts(gateway: Gateway, model: str) -> int:
    return int(gateway.upstream_stats()["submits_by_model"].get(model, 0))


def test_an_identical_fixed_seed_request_is_served_without_an_upstream_post(
    gateway: Gateway,
) -> None:
    # Given a fixed-seed job that ran
    model = f"cache-{uuid.uuid4().hex[:8]}"
    first = run(gateway, request_with_seed(model))
    assert posts(gateway, model) == 1
    # When the same caller sends the same request again
    answer = gateway.submit(request_with_seed(model))
    # Then it is answered at once, 200 SUCCESS, as a new job served from the first one's images
    assert answer.status_code == 200, answer.text
    served = answer.json()
    assert (served["status"], served["cached_from"]) == ("SUCCESS", first["id"])
    assert served["id"] != first["id"]
    assert [image["sha256"] for image in served["images"]] == [
        image["sha256"] for image in first["images"]
    ]
    assert requests.get(served["download_urls"][0], timeout=10).content[:8] == b"\x89PNG\r\n\x1a\n"
    # And no new upstream POST was made; the job reads back like any other, with its event
    assert posts(gateway, model) == 1
    assert gateway.status(served["id"]).json()["cached_from"] == first["id"]
    event = gateway.completion(lambda e: e["detail"].get("job_id") == served["id"])
    assert event["detail-type"] == "Image Generation Succeeded"


def test_no_seed_another_caller_or_no_cache_generate_again(gateway: Gateway) -> None:
    # Given a fixed-seed job that ran, and one without a seed
    model = f"cache-{uuid.uuid4().hex[:8]}"
    run(gateway, request_with_seed(model))
    run(gateway, request_with_seed(model, seed=None))
    run(gateway, request_with_seed(model, seed=None))
    # When another caller sends the same fixed-seed request, and the first one forces a fresh
    # generation with Cache-Control: no-cache
    other = run(gateway, request_with_seed(model), caller="someone-else")
    fresh = run(gateway, request_with_seed(model), headers={"Cache-Control": "no-cache"})
    # Then each was generated: 1 + 2 without a seed + 1 other caller + 1 no-cache
    assert "cached_from" not in other
    assert "cached_from" not in fresh
    assert posts(gateway, model) == 5


def test_a_queued_fixed_seed_request_is_served_unless_cache_is_false(gateway: Gateway) -> None:
    # Given a queued fixed-seed request that ran
    model = f"cache-q-{uuid.uuid4().hex[:8]}"
    sqs, queue = gateway.aws("sqs"), gateway.outputs()["RequestQueueUrl"]
    envelope = {"kind": "text2image", "request": request_with_seed(model)}
    reference = f"first-{model}"
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({**envelope, "reference": reference}))
    first = gateway.completion(lambda e: e["detail"].get("reference") == reference)
    # When it is queued again, then once more with "cache": false
    again, fresh = f"again-{model}", f"fresh-{model}"
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({**envelope, "reference": again}))
    served = gateway.completion(lambda e: e["detail"].get("reference") == again)
    body = json.dumps({**envelope, "reference": fresh, "cache": False})
    sqs.send_message(QueueUrl=queue, MessageBody=body)
    generated = gateway.completion(lambda e: e["detail"].get("reference") == fresh)
    # Then the second was served (its own job, the same pictures), the third generated
    assert served["detail-type"] == generated["detail-type"] == "Image Generation Succeeded"
    assert served["detail"]["job_id"] != first["detail"]["job_id"]
    assert [i["sha256"] for i in served["detail"]["images"]] == [
        i["sha256"] for i in first["detail"]["images"]
    ]
    assert posts(gateway, model) == 2
