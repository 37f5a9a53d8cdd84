"""The whole gateway as `make run` starts it, driven over HTTP only: the real template, the real
state machine file executed by moto, the real handlers, the fake upstream."""

from __future__ import annotations

import hashlib
import json
import re
import struct
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from local.aws.template import http_api_routes
from local.fake_upstream import FAILURE_MESSAGE
from tests.e2e.conftest import E2E_UPSTREAM_KEY, Gateway

pytestmark = pytest.mark.network

SAMPLE_REQUEST = Path(__file__).resolve().parents[2] / "events" / "text2image_request.json"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, after checking the PNG signature."""
    assert data[:8] == PNG_SIGNATURE, data[:16]
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def accepted_id(response: requests.Response) -> str:
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "PENDING"
    job_id: str = body["id"]
    return job_id


def downloaded_images(gateway: Gateway, view: dict[str, Any]) -> list[bytes]:
    """Every image of a SUCCESS view, fetched through its presigned URL and checked against the
    type, size and sha256 the gateway reported."""
    assert view["status"] == "SUCCESS", view
    assert view["download_urls"] == [image["url"] for image in view["images"]]
    blobs: list[bytes] = []
    for image in view["images"]:
        assert image["url"].startswith(gateway.moto_url + "/")
        assert "X-Amz-Signature=" in image["url"]
        response = requests.get(image["url"], timeout=30)
        assert response.status_code == 200
        assert image["content_type"] == "image/png"
        assert len(response.content) == image["size"]
        assert hashlib.sha256(response.content).hexdigest() == image["sha256"]
        blobs.append(response.content)
    return blobs


def small_request(**fields: Any) -> dict[str, Any]:
    return {"model_id": "sd1.5", "prompt": "a lighthouse at dawn", "seed": 7, **fields}


# --------------------------------------------------------------------------- success


def test_the_sample_request_ends_success_with_pngs_behind_presigned_urls(
    gateway: Gateway,
) -> None:
    # Given the sample request body, sent as the upstream's Python example sends it (no
    # Content-Type header)
    body = SAMPLE_REQUEST.read_bytes()
    # When it is submitted and followed until it ends
    job_id = accepted_id(gateway.submit(raw=body))
    view = gateway.wait(job_id)
    # Then it succeeded with one 512x512 PNG, served by moto through a presigned URL
    (image,) = downloaded_images(gateway, view)
    assert png_size(image) == (512, 512)
    # And the timings say how long the upstream and the copy took
    timings = view["timings"]
    assert timings["upstream_seconds"] > 0
    assert timings["copy_seconds"] is not None
    assert timings["total_seconds"] >= timings["upstream_seconds"]


def test_several_samples_and_sizes_each_get_their_own_images(gateway: Gateway) -> None:
    # Given three requests of different counts and sizes, submitted together
    shapes = [(2, 256, 192), (3, 64, 1024), (4, 1024, 64)]
    requests_by_shape = {
        shape: small_request(samples=shape[0], width=shape[1], height=shape[2]) for shape in shapes
    }
    with ThreadPoolExecutor(max_workers=3) as pool:
        ids = dict(
            zip(
                shapes,
                pool.map(lambda b: accepted_id(gateway.submit(b)), requests_by_shape.values()),
                strict=True,
            )
        )
    # When every job has ended
    views = {shape: gateway.wait(job_id) for shape, job_id in ids.items()}
    # Then each has as many PNGs as it asked for, of the size it asked for, all different
    for (samples, width, height), view in views.items():
        images = downloaded_images(gateway, view)
        assert len(images) == samples
        assert {png_size(image) for image in images} == {(width, height)}
        assert len({hashlib.sha256(image).hexdigest() for image in images}) == samples


def test_an_instant_upstream_success_is_stored_at_once(gateway: Gateway) -> None:
    # Given a model the upstream answers SUCCESS for in its submit answer
    # When it is submitted
    job_id = accepted_id(gateway.submit(small_request(model_id="fake-instant", samples=2)))
    # Then it is SUCCESS within a few seconds (no wait, no status check), with both images
    view = gateway.wait(job_id, timeout=10)
    assert len(downloaded_images(gateway, view)) == 2


# --------------------------------------------------------------------------- failure


def test_an_upstream_failure_ends_failure_with_the_upstreams_message(gateway: Gateway) -> None:
    # Given a model the upstream fails after one PENDING
    # When it is submitted and followed
    job_id = accepted_id(gateway.submit(small_request(model_id="fake-failure")))
    view = gateway.wait(job_id)
    # Then the job is FAILURE with the upstream's own message, and no image
    assert view["status"] == "FAILURE"
    assert view["error_code"] == "UPSTREAM_FAILURE"
    assert view["error"] == FAILURE_MESSAGE
    assert "download_urls" not in view


def test_an_upstream_refusal_ends_the_job_with_the_upstreams_message(gateway: Gateway) -> None:
    # Given a model the upstream refuses in its submit answer
    # When it is submitted
    response = gateway.submit(small_request(model_id="fake-reject"))
    # Then the caller has a job id at once (the POST happens in the job's workflow)
    assert response.status_code == 202, response.text
    # And the job ends FAILURE, saying why
    view = gateway.wait(response.json()["id"], timeout=15)
    assert view["status"] == "FAILURE"
    assert view["error_code"] == "UPSTREAM_REJECTED"
    assert "fake-reject" in view["error"]


# --------------------------------------------------------------------------- bad requests


def test_an_unknown_job_is_404(gateway: Gateway) -> None:
    # Given an id no job has
    # When its status is asked for
    response = gateway.status(str(uuid.uuid4()))
    # Then the answer is 404 in the contract's error shape
    assert response.status_code == 404
    assert response.json()["status"] == "FAILURE"


@pytest.mark.parametrize(
    "raw",
    [b'{"model_id": "sd1.5", "prompt": ', b"not json at all", b"\xff\xfe\x00 binary"],
    ids=["truncated", "text", "not-utf8"],
)
def test_a_malformed_body_is_400_and_reaches_nothing(gateway: Gateway, raw: bytes) -> None:
    # Given a body that is not JSON
    submits_before = gateway.upstream_stats()["submits"]
    # When it is submitted
    response = gateway.submit(raw=raw)
    # Then the answer is 400 in the contract's error shape, and the upstream saw nothing
    assert response.status_code == 400, response.text
    assert response.json()["status"] == "FAILURE"
    assert gateway.upstream_stats()["submits"] == submits_before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (small_request(width=513), "width"),
        (small_request(samples=9), "samples"),
        ({"model_id": "sd1.5"}, "prompt"),
        (small_request(prompt="   "), "prompt"),
        (small_request(colour="red"), "colour"),
        (small_request(lora_models=["a-lora"]), "lora_weights"),
    ],
    ids=["width-not-multiple-of-8", "too-many-samples", "no-prompt", "blank-prompt",
         "unknown-field", "lora-without-weights"],
)  # fmt: skip
def test_a_bad_input_is_422_naming_the_field(
    gateway: Gateway, body: dict[str, Any], field: str
) -> None:
    # Given a request with one bad field (and a model id of its own, to count its POSTs by)
    model = f"bad-{uuid.uuid4().hex[:8]}"
    body = {**body, "model_id": model}
    # When it is submitted
    response = gateway.submit(body)
    # Then the answer is 422, naming the field in the summary and in the details
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["status"] == "FAILURE"
    assert field in answer["error"]
    assert field in [detail["field"] for detail in answer["details"]]
    # And nothing reached the upstream
    assert model not in gateway.upstream_stats()["submits_by_model"]


# --------------------------------------------------------------------------- callers


def test_a_job_is_visible_only_to_the_caller_that_created_it(gateway: Gateway) -> None:
    # Given a job submitted by alice
    job_id = accepted_id(gateway.submit(small_request(model_id="fake-instant"), caller="alice"))
    assert gateway.wait(job_id, caller="alice", timeout=10)["status"] == "SUCCESS"
    # When another caller, or the default local caller, asks for it
    for other in ("mallory", None):
        response = gateway.status(job_id, caller=other)
        # Then it does not exist for them
        assert response.status_code == 404, (other, response.text)
    # And alice still sees it
    assert gateway.status(job_id, caller="alice").status_code == 200


def test_concurrent_callers_each_get_their_own_jobs(gateway: Gateway) -> None:
    # Given eight callers submitting at the same time
    callers = [f"caller-{n}" for n in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(
            pool.map(
                lambda c: accepted_id(
                    gateway.submit(small_request(model_id="fake-instant"), caller=c)
                ),
                callers,
            )
        )
        # When each asks for its own job and for its neighbour's, all at once
        own = list(pool.map(lambda c, j: gateway.status(j, caller=c).status_code, callers, ids))
        neighbours = ids[1:] + ids[:1]
        other = list(
            pool.map(lambda c, j: gateway.status(j, caller=c).status_code, callers, neighbours)
        )
    # Then every job was recorded for the caller that sent it, and only that caller sees it
    assert len(set(ids)) == len(callers)
    assert own == [200] * len(callers)
    assert other == [404] * len(callers)


def test_an_invalid_local_caller_name_is_refused(gateway: Gateway) -> None:
    # Given a caller header that is not an IAM user name
    # When it is used
    response = gateway.status(str(uuid.uuid4()), caller="../admin")
    # Then the local gateway refuses it
    assert response.status_code == 400
    assert "X-Local-Caller" in response.json()["error"]


# --------------------------------------------------------------------------- routing


def test_every_route_of_the_template_is_served(gateway: Gateway) -> None:
    # Given the routes template.yaml declares
    routes = http_api_routes()
    assert routes
    for route in routes:
        # When each is requested (path parameters filled in)
        path = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), route.path)
        method = "GET" if route.method == "ANY" else route.method
        response = gateway.session.request(method, gateway.url + path, data=b"{}", timeout=30)
        # Then a function answers it (JSON, or the Swagger UI's HTML), not the "no such route"
        # fallback
        if "json" in response.headers.get("Content-Type", ""):
            assert response.json() != {"status": "FAILURE", "error": "no such route"}, route
        else:
            assert response.status_code == 200, route


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nope"),
        ("GET", "/sd/text2image/v1"),
        ("POST", "/sd/text2image/v1/status/abc"),
        ("GET", "/sd/text2image/v1/status/abc/extra"),
    ],
)
def test_a_request_no_route_matches_is_404(gateway: Gateway, method: str, path: str) -> None:
    # Given a method and path the template has no route for
    # When it is requested
    response = gateway.session.request(method, gateway.url + path, timeout=30)
    # Then the local API answers 404 in the contract's error shape
    assert response.status_code == 404
    assert response.json() == {"status": "FAILURE", "error": "no such route"}


# --------------------------------------------------------------------------- logs


def job_log_lines_once_stored(gateway: Gateway, job_id: str, timeout: float = 5.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in gateway.logs().splitlines() if job_id in line]
        if any("[invoke] store_images " in line for line in lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_each_invocation_logs_one_line_and_the_upstream_key_never_appears(
    gateway: Gateway,
) -> None:
    # Given a job run to the end
    job_id = accepted_id(gateway.submit(small_request(model_id="fake-instant")))
    gateway.wait(job_id, timeout=10)
    # When the stack's output is read (an invocation's line is printed when it returns,
    # which can be just after a status GET already shows the job SUCCESS)
    lines = job_log_lines_once_stored(gateway, job_id)
    # Then there is one line per invocation of each function that touched the job
    submit_lines = [line for line in lines if "[invoke] submit " in line]
    assert len(submit_lines) == 1
    assert re.search(r"\d+ ms\s+ok\s+POST /sd/text2image/v1 -> 202", submit_lines[0])
    assert any("[invoke] store_images " in line for line in lines)
    assert any("[invoke] job_status " in line and "-> 200" in line for line in lines)
    # And the upstream API key is nowhere in the output, and Powertools stayed quiet about
    # this job (other tests' jobs warn on purpose: a webhook answering 500, say)
    output = gateway.logs()
    assert E2E_UPSTREAM_KEY not in output
    assert not [line for line in lines if line.startswith("{")]
    # And the key was really in use: the fake upstream refused nobody
    assert gateway.upstream_stats()["rejected_auth"] == 0
    assert gateway.upstream_stats()["submits"] > 0


# --------------------------------------------------------------------------- as deployed


def stack_outputs() -> dict[str, str]:
    from tests.e2e.conftest import STACK_ENVIRONMENT

    outputs: dict[str, str] = json.loads(Path(STACK_ENVIRONMENT["STACK_OUTPUTS_FILE"]).read_text())
    return outputs


def test_the_stack_writes_its_outputs_for_tools(gateway: Gateway) -> None:
    # Given the running stack
    # When a tool reads its outputs file
    outputs = stack_outputs()
    # Then it holds the template's outputs with local values, and the local-only keys
    assert outputs["ApiUrl"] == gateway.url
    assert outputs["AwsEndpointUrl"] == gateway.moto_url
    assert outputs["FakeUpstreamUrl"] == gateway.upstream_url
    assert outputs["StateMachineArn"].startswith("arn:aws:states:")
    for name in ("ImagesBucketName", "JobsTableName", "UpstreamApiKeySecretArn"):
        assert outputs[name]
    # And the event-driven callers' and API-key callers' names (docs/design.md, Local stack)
    assert outputs["ApiKeyUrl"] == gateway.url
    assert outputs["LocalApiKey"].startswith("igw_")
    assert outputs["WebhookSigningSecret"].startswith("whsec_")
    for name in ("RequestQueueUrl", "EventBusName", "CompletionQueueUrl", "ApiKeysTableName"):
        assert outputs[name]


def test_the_reconciler_runs_on_its_schedule_and_ends_a_stuck_job(gateway: Gateway) -> None:
    # Given a job left PENDING long past its deadline, its workflow gone before sending it
    outputs = stack_outputs()
    table = boto3.resource(
        "dynamodb",
        endpoint_url=gateway.moto_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).Table(outputs["JobsTableName"])
    job_id = str(uuid.uuid4())
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    table.put_item(
        Item={
            "job_id": job_id,
            "owner": "account:123456789012",
            "status": "PENDING",
            "request": "{}",
            "run_token": "stuck-run-token-0123456789",
            "created_at": long_ago.isoformat(),
            "updated_at": long_ago.isoformat(),
            "deadline_at": long_ago.isoformat(),
            "expires_at": int(time.time()) + 3600,
            "pending": "1",
        }
    )
    # When the local schedule (every 2 s here) runs the reconciler
    view = gateway.wait(job_id, timeout=20)
    # Then the job ended with a reason, as it would when deployed
    assert (view["status"], view["error_code"]) == ("FAILURE", "NOT_SUBMITTED")


def test_a_job_whose_workflow_never_started_is_started_without_a_second_post(
    gateway: Gateway,
) -> None:
    # Given a job row as a submit leaves it when it dies between the row and StartExecution
    # (recorded, never started), of a model id of its own
    outputs = stack_outputs()
    table = gateway.aws("dynamodb")
    job_id, model = str(uuid.uuid4()), f"unstarted-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    table.put_item(
        TableName=outputs["JobsTableName"],
        Item={
            "job_id": {"S": job_id},
            "owner": {"S": "account:123456789012"},
            "kind": {"S": "text2image"},
            "status": {"S": "PENDING"},
            "request": {"S": json.dumps({"model_id": model, "prompt": "a fox"})},
            "run_token": {"S": "unstarted-run-token-0123456789"},
            "created_at": {"S": now.isoformat()},
            "updated_at": {"S": now.isoformat()},
            "deadline_at": {"S": (now + timedelta(seconds=20)).isoformat()},
            "expires_at": {"N": str(int(time.time()) + 3600)},
            "pending": {"S": "1"},
        },
    )
    # When the reconciler's schedule runs (every 2 s here, its start grace 3 s; deployed: every
    # minute, 45 s, so within two minutes of the row)
    view = gateway.wait(job_id, timeout=20)
    # Then the job was started and ran to SUCCESS, with one upstream POST in all
    assert view["status"] == "SUCCESS", view
    assert gateway.upstream_stats()["submits_by_model"][model] == 1


# --------------------------------------------------------------------------- the three kinds

KIND_BODIES: dict[str, dict[str, Any]] = {
    "image2image": {
        "model_id": "sd1.5",
        "prompt": "the lighthouse as an oil painting",
        "init_image": "https://images.example.com/lighthouse.png",
        "strength": 0.6,
        "scheduler": "UniPCMultistepScheduler",
        "width": 128,
        "height": 96,
    },
    "inpainting": {
        "model_id": "sd1.5",
        "prompt": "a red door",
        "init_image": "https://images.example.com/house.png",
        "mask_image": "https://images.example.com/house-door-mask.png",
        "samples": 2,
        "width": 64,
        "height": 64,
    },
}


@pytest.mark.parametrize("kind", ["image2image", "inpainting"])
def test_each_kind_ends_success_with_pngs_on_its_own_route(gateway: Gateway, kind: str) -> None:
    # Given a body of that kind, sent the way the upstream's own client sends it
    body = KIND_BODIES[kind]
    response = gateway.session.post(f"{gateway.url}/sd/{kind}/v1", json=body, timeout=30)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    # When the job is followed on its own kind's status route
    deadline = time.monotonic() + 60
    while True:
        view = gateway.session.get(f"{gateway.url}/sd/{kind}/v1/status/{job_id}", timeout=30)
        assert view.status_code == 200, view.text
        if view.json()["status"] != "PENDING" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    # Then it ended SUCCESS with PNGs of the asked size, one per sample
    answer = view.json()
    assert answer["status"] == "SUCCESS", answer
    assert len(answer["download_urls"]) == body.get("samples", 1)
    for url in answer["download_urls"]:
        data = requests.get(url, timeout=10).content
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">II", data[16:24]) == (body["width"], body["height"])
    # And the upstream got it on that kind's own route
    kinds = {job["kind"] for job in gateway.upstream_stats()["jobs"].values()}
    assert kind in kinds
    # And the job is not visible on another kind's route
    other = gateway.session.get(f"{gateway.url}/sd/text2image/v1/status/{job_id}", timeout=30)
    assert other.status_code == 404


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("image2image", "init_image", None),
        ("image2image", "init_image", "https://user:pw@images.example.com/a.png"),
        ("inpainting", "mask_image", None),
        ("inpainting", "mask_image", "not a url"),
    ],
)
def test_a_missing_or_malformed_image_url_is_a_422_with_no_upstream_call(
    gateway: Gateway, kind: str, field: str, value: str | None
) -> None:
    # Given a body of that kind with the image URL missing or malformed
    body = {**KIND_BODIES[kind], "model_id": f"never-sent-{uuid.uuid4().hex[:8]}"}
    if value is None:
        del body[field]
    else:
        body[field] = value
    # When it is submitted
    response = gateway.session.post(f"{gateway.url}/sd/{kind}/v1", json=body, timeout=30)
    # Then it is a 422 naming the field, and the upstream never heard of it
    assert response.status_code == 422, response.text
    assert [detail["field"] for detail in response.json()["details"]] == [field]
    assert body["model_id"] not in gateway.upstream_stats()["submits_by_model"]
