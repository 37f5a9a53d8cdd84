"""The upstream's own documented SD 1.5 request bodies (#22), sent as a new user would, over the
local stack: each ends SUCCESS, the fake upstream received it field for field, and Hi-res Fix and
`upscale: "2x"` images are twice the size. Wrong ones are 422s naming the field, with nothing
sent; a body `webhook` is delivered signed and never reaches the upstream. The field-by-field
limits are unit tests (tests/unit/domain/test_sd15_surface.py)."""

from __future__ import annotations

import json
import secrets
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from imagegateway.domain.base import JobKind
from tests.e2e.conftest import Gateway
from tests.support.upstream_examples import EXAMPLES, TYPO, UpstreamExample
from tests.support.webhook_receivers import Delivery, recording_receiver

pytestmark = pytest.mark.network

BY_NAME = {example.name: example for example in EXAMPLES}


def post(gateway: Gateway, kind: JobKind, body: dict[str, Any]) -> requests.Response:
    """POST a body to its kind's route, as the upstream's own snippet does (json.dumps)."""
    return gateway.session.post(gateway.url + kind.submit_path, data=json.dumps(body), timeout=30)


def finished(gateway: Gateway, kind: JobKind, job_id: str, *, timeout: float = 60) -> Any:
    """The job's view on its kind's status route, once it is no longer PENDING."""
    deadline = time.monotonic() + timeout
    while True:
        response = gateway.session.get(gateway.url + kind.status_path(job_id), timeout=30)
        assert response.status_code == 200, response.text
        view = response.json()
        if view["status"] != "PENDING" or time.monotonic() > deadline:
            return view
        time.sleep(0.25)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


@pytest.fixture(scope="module")
def submitted(gateway: Gateway) -> dict[str, tuple[dict[str, Any], str]]:
    """Every documented example, submitted at once (they run side by side): by name, the body
    sent and its job id. Each prompt ends with a token of this run, so that the fake's record of
    it is found by its body."""
    jobs: dict[str, tuple[dict[str, Any], str]] = {}
    for example in EXAMPLES:
        body = {**example.body, "prompt": f"{example.body['prompt']} ({secrets.token_hex(4)})"}
        response = post(gateway, example.kind, body)
        assert response.status_code == 202, (example.name, response.text)
        jobs[example.name] = (body, response.json()["id"])
    return jobs


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_a_documented_body_ends_success_as_sent_and_hires_images_are_twice_the_size(
    gateway: Gateway, submitted: dict[str, tuple[dict[str, Any], str]], name: str
) -> None:
    # Given a body shaped like one of the upstream's documented examples, submitted to its route
    example: UpstreamExample = BY_NAME[name]
    body, job_id = submitted[name]
    # When the job ends
    view = finished(gateway, example.kind, job_id)
    # Then it succeeded with the images it asked for
    assert view["status"] == "SUCCESS", view
    assert len(view["download_urls"]) == body.get("samples", 1)
    # And the upstream received the body field for field, on the kind's route
    received = [
        job
        for job in gateway.upstream_stats()["jobs"].values()
        if job["request"].get("prompt") == body["prompt"]
    ]
    assert [job["kind"] for job in received] == [example.kind.value]
    assert received[0]["request"] == body
    # And its images are the size asked for, twice it under Hi-res Fix or a 2x upscale
    image = gateway.session.get(view["download_urls"][0], timeout=30)
    assert image.status_code == 200
    expected = (body["width"] * example.scale, body["height"] * example.scale)
    assert png_size(image.content) == expected


HIRES = BY_NAME["hires-fix-on"]
CONTROLNET = BY_NAME["controlnet"]
IP_ADAPTER = BY_NAME["ip-adapter"]


@pytest.mark.parametrize(
    ("kind", "body", "field"),
    [
        (JobKind.TEXT2IMAGE, {**HIRES.body, "samples": 2}, "hires"),
        (
            JobKind.CONTROLNET,
            {**CONTROLNET.body, "init_images": CONTROLNET.body["init_images"] * 2},
            "init_images",
        ),
        (JobKind.TEXT2IMAGE, {**HIRES.body, "clip_skip": 13}, "clip_skip"),
        (
            JobKind.TEXT2IMAGE,
            {**IP_ADAPTER.body, "ip_adapter_image": "https://me:pw@images.example.com/face.png"},
            "ip_adapter_image",
        ),
        (JobKind.TEXT2IMAGE, {**HIRES.body, "base64": True}, "base64"),
        (JobKind.TEXT2IMAGE, TYPO, "num_inference_step"),
    ],
    ids=[
        "hires-two-samples",
        "controlnet-lists",
        "clip-skip-13",
        "ip-image-credentials",
        "base64",
        "typo",
    ],
)
def test_a_wrong_body_is_a_422_naming_the_field_and_nothing_is_sent(
    gateway: Gateway, kind: JobKind, body: dict[str, Any], field: str
) -> None:
    # Given a documented body made wrong, under a model id of its own
    model_id = f"refused-{secrets.token_hex(4)}"
    # When it is submitted
    response = post(gateway, kind, {**body, "model_id": model_id})
    # Then it is a 422 naming the field
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["status"] == "FAILURE"
    assert [detail["field"] for detail in answer["details"]] == [field]
    assert field in answer["error"]
    # And nothing reached the upstream
    assert model_id not in gateway.upstream_stats()["submits_by_model"]


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[Delivery]]]:
    with recording_receiver("/hooks/images") as recorded:
        yield recorded


def test_a_body_webhook_is_delivered_signed_and_never_reaches_the_upstream(
    gateway: Gateway, receiver: tuple[str, list[Delivery]]
) -> None:
    # Given a documented body with the family's `webhook` field, under a model id of its own
    url, received = receiver
    body = {**HIRES.body, "model_id": f"hooked-{secrets.token_hex(4)}", "webhook": url}
    # When it is submitted and ends
    response = post(gateway, JobKind.TEXT2IMAGE, body)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    deadline = time.monotonic() + 60
    while not received:
        assert time.monotonic() < deadline, "no webhook delivered"
        time.sleep(0.25)
    # Then the webhook came signed with the caller's secret, telling of the job's success
    headers, payload = received[0]
    secret = gateway.session.get(gateway.url + "/v1/webhooks/secret", timeout=30).json()["secret"]
    event = Webhook(secret).verify(payload, headers)
    assert (event["type"], event["data"]["job_id"]) == ("image.succeeded", job_id)
    # And the upstream received the body without it
    (job,) = [
        job
        for job in gateway.upstream_stats()["jobs"].values()
        if job["model_id"] == body["model_id"]
    ]
    assert job["request"] == {name: value for name, value in body.items() if name != "webhook"}
