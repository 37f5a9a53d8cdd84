"""The Python client against a fake gateway: each verb's route and body, waiting, downloading and
checking images, the gateway's errors as exceptions that say what to do, and authentication."""

from __future__ import annotations

import hashlib
import json
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from imagegateway_client import (
    AuthenticationError,
    Client,
    GatewayError,
    GatewayUnreachableError,
    ImageCheckError,
    ImageGatewayError,
    Job,
    JobFailedError,
    JobFinishedError,
    JobNotFoundError,
    Progress,
    WaitTimeoutError,
)
from imagegateway_client.auth import region_for

from tests.client.conftest import FakeGateway, Reply, Seen, png_bytes

pytestmark = pytest.mark.network


def fast(url: str, **options: object) -> Client:
    return Client(url, poll_interval=0.01, max_poll_interval=0.01, **options)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- verbs


def test_submit_posts_the_body_as_json_to_the_kinds_route(fake: FakeGateway) -> None:
    fake.job("job-7", kind="image2image")
    body = {"model_id": "sd1.5", "prompt": "oil", "init_image": "https://example.com/a.png"}
    job = fast(fake.url).submit("image2image", body, idempotency_key="key-1")
    assert (job.id, job.status, job.http_status, job.kind) == (
        "job-7",
        "PENDING",
        202,
        "image2image",
    )
    [seen] = fake.seen
    assert (seen.method, seen.path) == ("POST", "/sd/image2image/v1")
    assert json.loads(seen.body) == body
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["idempotency-key"] == "key-1"


def test_submit_sends_json_bytes_as_they_are_and_a_webhook_url_as_a_query_parameter(
    fake: FakeGateway,
) -> None:
    fake.job()
    raw = b'{"model_id": "sd1.5",  "prompt": "a fox"}'
    fast(fake.url).submit("text2image", raw, webhook_url="https://hooks.example.com/x?a=1")
    [seen] = fake.seen
    assert seen.body == raw
    assert seen.query == {"webhook_url": ["https://hooks.example.com/x?a=1"]}


def test_an_unknown_kind_is_refused_before_any_request(fake: FakeGateway) -> None:
    with pytest.raises(ValueError, match="text2image, image2image, inpainting"):
        fast(fake.url).submit("img2img", {})  # type: ignore[arg-type]
    assert fake.seen == []


def test_status_without_a_kind_asks_each_kinds_route_until_one_knows_the_job(
    fake: FakeGateway,
) -> None:
    fake.job("job-3", kind="inpainting", pending_polls=0)
    job = fast(fake.url).status("job-3")
    assert (job.status, job.kind) == ("SUCCESS", "inpainting")
    assert [seen.path for seen in fake.seen] == [
        "/sd/text2image/v1/status/job-3",
        "/sd/image2image/v1/status/job-3",
        "/sd/inpainting/v1/status/job-3",
    ]
    assert job.images[0].size == len(png_bytes(0))


def test_wait_polls_until_the_job_ends_and_reports_each_read(fake: FakeGateway) -> None:
    fake.job(pending_polls=3)
    seen: list[Progress] = []
    job = fast(fake.url).wait("job-1", "text2image", timeout=10, on_progress=seen.append)
    assert job.status == "SUCCESS"
    assert [p.job.status for p in seen] == ["PENDING", "PENDING", "PENDING", "SUCCESS"]
    assert [p.polls for p in seen] == [1, 2, 3, 4]


def test_wait_returns_a_failure_and_gives_up_on_a_job_still_pending(fake: FakeGateway) -> None:
    fake.job("job-f", pending_polls=0, failure=("UPSTREAM_FAILURE", "the model crashed"))
    failed = fast(fake.url).wait("job-f", "text2image", timeout=5)
    assert (failed.status, failed.error_code, failed.error) == (
        "FAILURE",
        "UPSTREAM_FAILURE",
        "the model crashed",
    )
    fake.job("job-p", pending_polls=10**6)
    with pytest.raises(WaitTimeoutError, match="imagegateway status job-p --kind text2image"):
        fast(fake.url).wait("job-p", "text2image", timeout=0.1)


def test_generate_sends_the_upstreams_field_names_waits_and_saves_checked_images(
    fake: FakeGateway, tmp_path: Path
) -> None:
    fake.job("job-g", pending_polls=1, images=2)
    result = fast(fake.url).generate(
        prompt="a lighthouse",
        model_id="sd1.5",
        negative_prompt="blurry",
        steps=25,
        samples=2,
        width=512,
        height=384,
        seed=7,
        loras={"lora-a": 0.8, "lora-b": "-0.5"},
        extra={"guidance_scale": 7.5},
        out=tmp_path,
    )
    sent = json.loads(fake.requests_to("/sd/text2image/v1")[0].body)
    assert sent == {
        "model_id": "sd1.5",
        "prompt": "a lighthouse",
        "negative_prompt": "blurry",
        "num_inference_steps": 25,
        "samples": 2,
        "width": 512,
        "height": 384,
        "seed": 7,
        "lora_models": ["lora-a", "lora-b"],
        "lora_weights": ["0.8", "-0.5"],
        "guidance_scale": 7.5,
    }
    assert result.job.status == "SUCCESS"
    assert result.files == [tmp_path / "job-g" / "0.png", tmp_path / "job-g" / "1.png"]
    assert [path.read_bytes() for path in result.files] == [png_bytes(0), png_bytes(1)]


def test_generate_without_waiting_returns_the_accepted_job_and_no_files(
    fake: FakeGateway, tmp_path: Path
) -> None:
    fake.job("job-n")
    result = fast(fake.url).generate(prompt="x", out=tmp_path, wait=False)
    assert (result.job.id, result.job.status, result.files) == ("job-n", "PENDING", [])
    assert [seen.method for seen in fake.seen] == ["POST"]


def test_generate_raises_the_jobs_failure(fake: FakeGateway, tmp_path: Path) -> None:
    fake.job("job-x", failure=("TIMED_OUT", "the upstream did not finish"))
    with pytest.raises(JobFailedError, match="job-x ended FAILURE: TIMED_OUT") as failed:
        fast(fake.url).generate(prompt="x", out=tmp_path)
    assert failed.value.job.error_code == "TIMED_OUT"
    assert list(tmp_path.iterdir()) == []


def test_an_image_that_differs_from_the_reported_sha256_is_not_saved(
    fake: FakeGateway, tmp_path: Path
) -> None:
    entry = fake.image("bad.png", png_bytes(1))
    entry["sha256"] = hashlib.sha256(b"something else").hexdigest()
    view = {"status": "SUCCESS", "id": "job-b", "images": [entry], "download_urls": [entry["url"]]}
    with pytest.raises(ImageCheckError, match="differs from what the gateway reported"):
        fast(fake.url).download(Job.from_view(view), tmp_path)
    assert list((tmp_path / "job-b").iterdir()) == []


def test_an_expired_presigned_url_says_to_read_the_job_again(
    fake: FakeGateway, tmp_path: Path
) -> None:
    entry = fake.image("gone.png", png_bytes(2))
    fake.files.clear()
    view = {"status": "SUCCESS", "id": "job-e", "images": [entry]}
    with pytest.raises(ImageCheckError, match="imagegateway status job-e"):
        fast(fake.url).download(Job.from_view(view), tmp_path)


def test_images_are_fetched_without_the_gateways_credentials(
    fake: FakeGateway, tmp_path: Path
) -> None:
    fake.job(pending_polls=0)
    fast(fake.url, api_key="secret-key").generate(prompt="x", out=tmp_path)
    gateway_requests = [s for s in fake.seen if not s.path.startswith("/files/")]
    downloads = fake.requests_to("/files/")
    assert all(s.headers.get("api-key") == "secret-key" for s in gateway_requests)
    assert downloads
    assert all("api-key" not in s.headers and "authorization" not in s.headers for s in downloads)


def test_jobs_reads_a_page_with_its_cursor_and_filter(fake: FakeGateway) -> None:
    fake.on(
        "GET",
        "/v1/jobs",
        Reply(
            200,
            {
                "jobs": [
                    {"id": "j2", "status": "PENDING", "kind": "inpainting"},
                    {"id": "j1", "status": "FAILURE", "error_code": "CANCELLED", "error": "x"},
                ],
                "next_cursor": "opaque+/=",
            },
        ),
    )
    page = fast(fake.url).jobs(limit=2, cursor="c/1 2", status="PENDING")
    assert [(j.id, j.status, j.kind) for j in page.jobs] == [
        ("j2", "PENDING", "inpainting"),
        ("j1", "FAILURE", None),
    ]
    assert page.next_cursor == "opaque+/="
    [seen] = fake.seen
    assert seen.query == {"limit": ["2"], "cursor": ["c/1 2"], "status": ["PENDING"]}


def test_the_last_page_of_jobs_has_no_cursor(fake: FakeGateway) -> None:
    fake.on("GET", "/v1/jobs", Reply(200, {"jobs": [], "next_cursor": None}))
    page = fast(fake.url).jobs()
    assert (page.jobs, page.next_cursor) == ([], None)
    assert fake.seen[0].target == "/v1/jobs"


def test_a_cursor_the_gateway_did_not_hand_out_says_so(fake: FakeGateway) -> None:
    fake.on(
        "GET",
        "/v1/jobs",
        Reply(
            400,
            {
                "status": "FAILURE",
                "error": "not a cursor of yours",
                "error_code": "INVALID_CURSOR",
                "details": [{"field": "cursor", "message": "not a cursor of yours"}],
            },
        ),
    )
    with pytest.raises(GatewayError, match="Use a cursor exactly as") as refused:
        fast(fake.url).jobs(cursor="forged")
    assert (refused.value.status, refused.value.error_code) == (400, "INVALID_CURSOR")
    assert str(refused.value).count("not a cursor of yours") == 1  # a detail is not repeated


def test_cancel_posts_to_the_jobs_cancel_route(fake: FakeGateway) -> None:
    cancelled = {
        "status": "FAILURE",
        "id": "job-c",
        "error_code": "CANCELLED",
        "error": "cancelled",
    }
    fake.on("POST", "/v1/jobs/job-c/cancel", Reply(200, cancelled))
    job = fast(fake.url).cancel("job-c")
    assert (job.id, job.status, job.error_code) == ("job-c", "FAILURE", "CANCELLED")
    assert [(s.method, s.path, s.body) for s in fake.seen] == [
        ("POST", "/v1/jobs/job-c/cancel", b"")
    ]


def test_cancelling_a_finished_job_says_it_was_left_unchanged(fake: FakeGateway) -> None:
    fake.on(
        "POST",
        "/v1/jobs/job-d/cancel",
        Reply(409, {"status": "SUCCESS", "id": "job-d", "error": "the job has already ended"}),
    )
    with pytest.raises(JobFinishedError, match=r"already ended \(SUCCESS\)") as finished:
        fast(fake.url).cancel("job-d")
    assert finished.value.status == 409


def test_cancelling_another_callers_job_is_not_found(fake: FakeGateway) -> None:
    fake.on(
        "POST", "/v1/jobs/theirs/cancel", Reply(404, {"status": "FAILURE", "error": "no such job"})
    )
    with pytest.raises(JobNotFoundError, match="unknown or not yours"):
        fast(fake.url).cancel("theirs")


# ---------------------------------------------------------------------- errors


def test_a_422_carries_the_gateways_error_code_and_details(fake: FakeGateway) -> None:
    fake.on(
        "POST",
        "/sd/text2image/v1",
        Reply(
            422,
            {
                "status": "FAILURE",
                "error": "invalid request: samples: Input should be less than or equal to 4",
                "details": [
                    {"field": "samples", "message": "Input should be less than or equal to 4"},
                    {"field": "width", "message": "must be a multiple of 8"},
                ],
            },
        ),
    )
    with pytest.raises(GatewayError) as refused:
        fast(fake.url).submit("text2image", {"model_id": "sd1.5", "prompt": "x", "samples": 9})
    error = refused.value
    assert (error.status, error.error_code) == (422, None)
    assert error.error.startswith("invalid request: samples")
    assert [d["field"] for d in error.details] == ["samples", "width"]
    text = str(error)
    assert "width: must be a multiple of 8" in text
    assert "Fix the fields" in text


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_say_how_to_authenticate(fake: FakeGateway, status: int) -> None:
    fake.on("GET", "/sd/text2image/v1/status/j", Reply(status, {"message": "Forbidden"}))
    with pytest.raises(AuthenticationError) as refused:
        fast(fake.url).status("j", "text2image")
    text = str(refused.value)
    assert f"answered {status}: Forbidden" in text
    assert "IMAGEGATEWAY_API_KEY" in text
    assert "execute-api:Invoke" in text
    assert "no credentials" in text  # what this request carried


def test_an_unknown_job_is_unknown_or_not_yours(fake: FakeGateway) -> None:
    with pytest.raises(JobNotFoundError, match="unknown or not yours") as missing:
        fast(fake.url).status("nope", "text2image")
    assert missing.value.status == 404


def test_a_route_the_gateway_does_not_serve_is_not_an_unknown_job(fake: FakeGateway) -> None:
    fake.on("GET", "/v1/jobs", Reply(404, {"message": "Not Found"}))
    with pytest.raises(GatewayError, match="has no such route") as missing:
        fast(fake.url).jobs()
    assert not isinstance(missing.value, JobNotFoundError)


def test_a_503_without_an_upstream_key_names_it_and_its_retry_after(fake: FakeGateway) -> None:
    fake.on(
        "POST",
        "/sd/text2image/v1",
        Reply(
            503,
            {
                "status": "FAILURE",
                "error": "not configured",
                "error_code": "UPSTREAM_NOT_CONFIGURED",
            },
            {"Retry-After": "60"},
        ),
    )
    with pytest.raises(GatewayError) as refused:
        fast(fake.url).submit("text2image", {"model_id": "sd1.5", "prompt": "x"})
    assert (refused.value.error_code, refused.value.retry_after) == ("UPSTREAM_NOT_CONFIGURED", 60)
    assert "has not stored the upstream API key" in str(refused.value)


def test_a_500_says_the_gateway_failed(fake: FakeGateway) -> None:
    fake.on("GET", "/sd/text2image/v1/status/j", Reply(500, b"<html>oops</html>"))
    with pytest.raises(GatewayError, match="gateway failed; retry later") as failed:
        fast(fake.url).status("j", "text2image")
    assert failed.value.error == "<html>oops</html>"


def test_a_success_that_is_not_a_job_asks_whether_the_url_is_the_gateway(fake: FakeGateway) -> None:
    fake.on("GET", "/sd/text2image/v1/status/j", Reply(200, b"<html>a web page</html>"))
    with pytest.raises(ImageGatewayError, match="the gateway's URL"):
        fast(fake.url).status("j", "text2image")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_connection_refused_says_to_check_the_url_or_start_the_stack() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(GatewayUnreachableError) as unreachable:
        fast(url).status("j", "text2image")
    text = str(unreachable.value)
    assert f"cannot connect to the gateway at {url}" in text
    assert "Connection refused" in text
    assert "IMAGEGATEWAY_URL" in text
    assert "make run" in text


def test_the_url_is_the_argument_then_IMAGEGATEWAY_URL_then_the_local_stack(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Client().url == "http://127.0.0.1:3000"
    monkeypatch.setenv("IMAGEGATEWAY_URL", "https://api.example.com/prod/")
    assert Client().url == "https://api.example.com/prod"
    assert Client("http://localhost:9000").url == "http://localhost:9000"
    with pytest.raises(ImageGatewayError, match="not a gateway URL"):
        Client("localhost:3000")


# ---------------------------------------------------------------------- authentication


def test_without_credentials_requests_are_not_signed(fake: FakeGateway) -> None:
    fake.job()
    client = fast(fake.url)
    client.submit("text2image", {"model_id": "sd1.5", "prompt": "x"})
    assert client.auth.description == "no credentials"
    headers = fake.seen[0].headers
    assert "authorization" not in headers
    assert "api-key" not in headers


def test_IMAGEGATEWAY_API_KEY_is_sent_as_the_upstreams_API_Key_header(
    fake: FakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMAGEGATEWAY_API_KEY", "key-from-env")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    fake.job()
    client = fast(fake.url)
    client.status("job-1", "text2image")
    headers = fake.seen[0].headers
    assert headers["api-key"] == "key-from-env"
    assert "authorization" not in headers  # the API key wins over AWS credentials
    assert "IMAGEGATEWAY_API_KEY" in client.auth.description
    assert "key-from-env" not in repr(client.auth)


def verify_sigv4(seen: Seen, url: str, secret: str, token: str | None) -> None:
    """Recompute the signature of what the server received, with the signed headers only."""
    authorization = seen.headers["authorization"]
    signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    when = datetime.strptime(seen.headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    scope = authorization.split("Credential=")[1].split(",")[0].split("/")
    access_key, region, service = scope[0], scope[2], scope[3]
    request = AWSRequest(
        method=seen.method,
        url=url + seen.target,
        data=seen.body,
        headers={name: seen.headers[name] for name in signed if name not in ("x-amz-date",)},
    )
    signer = SigV4Auth(Credentials(access_key, secret, token), service, region)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("botocore.auth.get_current_datetime", lambda: when.replace(tzinfo=None))
        signer.add_auth(request)
    assert request.headers["Authorization"] == authorization


def test_aws_credentials_in_the_environment_sign_every_request_with_sigv4(
    fake: FakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    fake.job()
    fake.on("GET", "/v1/jobs", Reply(200, {"jobs": [], "next_cursor": None}))
    client = fast(fake.url)
    client.submit("text2image", {"model_id": "sd1.5", "prompt": "a fox"})
    client.jobs(limit=5, cursor="a b/c")
    assert client.auth.description == "AWS SigV4 (execute-api, eu-west-1)"
    for seen in fake.seen:
        authorization = seen.headers["authorization"]
        assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
        assert "/eu-west-1/execute-api/aws4_request" in authorization
        assert "host" in authorization.split("SignedHeaders=")[1]
        assert seen.headers["x-amz-date"].endswith("Z")
        assert seen.headers["x-amz-security-token"] == "session-token"
        verify_sigv4(seen, fake.url, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token")


def test_aws_auth_false_never_signs_and_true_needs_credentials(
    fake: FakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ImageGatewayError, match="found no AWS credentials"):
        Client(fake.url, aws_auth=True)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    fake.job()
    fast(fake.url, aws_auth=False).status("job-1", "text2image")
    assert "authorization" not in fake.seen[0].headers


def test_the_signing_region_is_the_environments_else_the_api_urls() -> None:
    api = "https://abc123.execute-api.ap-southeast-2.amazonaws.com/prod"
    assert region_for(api, {}, None) == "ap-southeast-2"
    assert region_for(api, {"AWS_DEFAULT_REGION": "us-west-2"}, None) == "us-west-2"
    assert region_for(api, {"AWS_REGION": "eu-central-1", "AWS_DEFAULT_REGION": "x"}, None) == (
        "eu-central-1"
    )
    assert region_for("https://images.example.com", {}, "sa-east-1") == "sa-east-1"
    assert region_for("http://127.0.0.1:3000", {}, None) == "us-east-1"


def test_a_status_read_is_retried_after_a_502(fake: FakeGateway) -> None:
    answers = iter(
        [Reply(502, {"message": "Bad Gateway"}), Reply(200, {"status": "PENDING", "id": "r"})]
    )

    def flaky(seen: Seen) -> Reply:
        return next(answers)

    fake.on("GET", "/sd/text2image/v1/status/r", flaky)
    assert fast(fake.url).status("r", "text2image").status == "PENDING"
    assert len(fake.seen) == 2


def test_a_submit_is_never_retried(fake: FakeGateway) -> None:
    fake.on("POST", "/sd/text2image/v1", Reply(502, {"message": "Bad Gateway"}))
    with pytest.raises(GatewayError):
        fast(fake.url).submit("text2image", {"model_id": "sd1.5", "prompt": "x"})
    assert len(fake.seen) == 1
