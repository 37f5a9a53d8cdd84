"""image2image, inpainting and controlnet through the submit function, the SubmitUpstream task
and the status function, against moto and the fake upstream (which records each job's kind)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from local.aws.resources import LocalStack
from local.fake_upstream import FakeUpstream
from tests.support.events import http_event_with_body, status_event
from tests.support.stack import invoke, job_row, response_body, table_rows, ticket_of

INIT = "https://images.example.com/house.png"
MASK = "https://images.example.com/house-mask.png"
BODIES: dict[str, dict[str, Any]] = {
    "image2image": {"model_id": "sd1.5", "prompt": "as a painting", "init_image": INIT},
    "inpainting": {
        "model_id": "sd1.5",
        "prompt": "a red door",
        "init_image": INIT,
        "mask_image": MASK,
    },
    "controlnet": {
        "model_id": "sd1.5",
        "prompt": "a dancer",
        "controlnets": ["canny"],
        "init_images": [INIT],
        "controlnet_weights": [0.5],
    },
}


def submit_event(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    event = http_event_with_body(body)
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/sd/{kind}/v1"
    event["routeKey"] = event["requestContext"]["routeKey"] = f"POST /sd/{kind}/v1"
    return event


@pytest.mark.parametrize("kind", ["image2image", "inpainting", "controlnet"])
def test_each_kind_is_recorded_sent_to_its_own_route_and_seen_on_its_own_status_route(
    stack: LocalStack, upstream: FakeUpstream, kind: str
) -> None:
    # Given a valid body of that kind
    # When it is submitted, and the workflow's first task sends it
    response = invoke(stack, "submit", submit_event(kind, BODIES[kind]))
    assert response["statusCode"] == 202, response["body"]
    job_id = response_body(response)["id"]
    sent = invoke(stack, "submit_upstream", ticket_of(stack, job_id))
    # Then the row records the kind and the body as given
    row = job_row(stack, job_id)
    assert row is not None
    assert row["kind"] == kind
    assert json.loads(row["request"]) == BODIES[kind]
    # And the upstream got it on that kind's own route
    assert upstream.stats()["jobs"][sent["upstream_id"]]["kind"] == kind
    # And the job is visible on its own kind's status route, and nowhere else
    assert invoke(stack, "job_status", status_event(job_id, kind))["statusCode"] == 200
    assert invoke(stack, "job_status", status_event(job_id, "text2image"))["statusCode"] == 404
    # And the status check asks the upstream on that kind's route too
    checked = invoke(stack, "check_upstream", {**sent, "wait_seconds": 1})
    assert checked["status"] == "SUCCESS"
    checks = upstream.stats()["jobs"][sent["upstream_id"]]["status_checks"]
    assert checks == upstream.stats()["status_checks"] == upstream.pending_polls + 1


@pytest.mark.parametrize(
    ("kind", "body", "field"),
    [
        ("image2image", {"model_id": "sd1.5", "prompt": "x"}, "init_image"),
        ("image2image", {**BODIES["image2image"], "init_image": "ftp://x/a.png"}, "init_image"),
        (
            "inpainting",
            {k: v for k, v in BODIES["inpainting"].items() if k != "mask_image"},
            "mask_image",
        ),
        (
            "inpainting",
            {**BODIES["inpainting"], "mask_image": "https://u:p@images.example.com/m.png"},
            "mask_image",
        ),
    ],
)
def test_a_missing_or_malformed_image_url_is_a_422_naming_it_and_reaches_nobody(
    stack: LocalStack, upstream: FakeUpstream, kind: str, body: dict[str, Any], field: str
) -> None:
    response = invoke(stack, "submit", submit_event(kind, body))
    answer = response_body(response)
    assert response["statusCode"] == 422
    assert [detail["field"] for detail in answer["details"]] == [field]
    assert table_rows(stack) == []
    assert upstream.stats()["submits"] == 0


def test_a_status_route_of_no_kind_is_a_404(stack: LocalStack, upstream: FakeUpstream) -> None:
    response = invoke(stack, "job_status", status_event("any-id", "outpainting"))
    assert response["statusCode"] == 404
    assert response_body(response)["status"] == "FAILURE"
