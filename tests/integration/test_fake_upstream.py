"""Integration tests for the fake imagepipeline.io upstream (local/fake_upstream/).

The fake is a real HTTP server on an ephemeral port; the tests talk to it with requests.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from local.fake_upstream import FakeUpstream, make_png

pytestmark = pytest.mark.network

API_KEY = "test-key"
PENDING_POLLS = 2
REPO_ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 5


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def server() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_key=API_KEY, pending_polls=PENDING_POLLS, port=0) as fake:
        yield fake


@pytest.fixture
def fake(server: FakeUpstream) -> Iterator[FakeUpstream]:
    server.reset()
    server.pending_polls = PENDING_POLLS
    yield server
    server.reset()


# --------------------------------------------------------------------------- helpers


def _params(**overrides: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "model_id": "sd1.5",
        "prompt": "a lighthouse at dusk, oil painting",
        "negative_prompt": "blurry",
        "num_inference_steps": 20,
        "samples": 1,
        "guidance_scale": 7.5,
        "width": 64,
        "height": 48,
        "seed": 12345,
    }
    params.update(overrides)
    return params


def _submit(fake: FakeUpstream, **overrides: Any) -> requests.Response:
    return requests.post(
        f"{fake.base_url}/sd/text2image/v1",
        headers={"API-Key": API_KEY},
        data=json.dumps(_params(**overrides)),
        timeout=TIMEOUT,
    )


def _status(fake: FakeUpstream, job_id: str, key: str | None = API_KEY) -> requests.Response:
    headers = {} if key is None else {"API-Key": key}
    return requests.get(
        f"{fake.base_url}/sd/text2image/v1/status/{job_id}", headers=headers, timeout=TIMEOUT
    )


def _run_to_success(fake: FakeUpstream, **overrides: Any) -> list[str]:
    job_id = _submit(fake, **overrides).json()["id"]
    for _ in range(PENDING_POLLS):
        assert _status(fake, job_id).json()["status"] == "PENDING"
    body = _status(fake, job_id).json()
    assert body["status"] == "SUCCESS"
    urls: list[str] = body["download_urls"]
    return urls


def _download(url: str) -> bytes:
    response = requests.get(url, timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/png"
    return response.content


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks: list[tuple[bytes, bytes]] = []
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        payload = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + payload) & 0xFFFFFFFF, f"bad CRC in {kind!r}"
        chunks.append((kind, payload))
        pos += 12 + length
    return chunks


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --------------------------------------------------------------------------- auth


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_missing_or_wrong_api_key_is_rejected_with_401(fake: FakeUpstream, key: str | None) -> None:
    # Given a request without the right API-Key header
    headers = {} if key is None else {"API-Key": key}

    # When it submits a job and polls a status
    submit = requests.post(
        f"{fake.base_url}/sd/text2image/v1",
        headers=headers,
        data=json.dumps(_params()),
        timeout=TIMEOUT,
    )
    status = _status(fake, "whatever", key=key)

    # Then both answer 401 with a JSON FAILURE body, and nothing is created
    for response in (submit, status):
        assert response.status_code == 401
        assert response.headers["Content-Type"] == "application/json"
        assert response.json() == {"status": "FAILURE", "error": "invalid or missing API-Key"}
    stats = fake.stats()
    assert stats["rejected_auth"] == 2
    assert stats["submits"] == 0
    assert stats["status_checks"] == 0


# --------------------------------------------------------------------------- lifecycle


def test_normal_job_is_pending_for_pending_polls_then_succeeds(fake: FakeUpstream) -> None:
    # Given a normal model and three samples
    # When the job is submitted
    submit = _submit(fake, samples=3)

    # Then the answer is 200 PENDING with an id
    assert submit.status_code == 200
    assert submit.headers["Content-Type"] == "application/json"
    body = submit.json()
    assert body["status"] == "PENDING"
    job_id = body["id"]
    assert set(body) == {"status", "id"}

    # When it is polled, Then it is PENDING for exactly pending_polls checks
    for _ in range(PENDING_POLLS):
        assert _status(fake, job_id).json() == {"status": "PENDING", "id": job_id}

    # Then SUCCESS with one URL per sample, served by the fake itself, and it stays SUCCESS
    for _ in range(2):
        result = _status(fake, job_id)
        assert result.status_code == 200
        body = result.json()
        assert body["status"] == "SUCCESS"
        assert body["id"] == job_id
        assert body["download_urls"] == [
            f"{fake.base_url}/images/{job_id}/{i}.png" for i in range(3)
        ]


def test_pending_polls_zero_succeeds_on_first_check(fake: FakeUpstream) -> None:
    # Given a fake configured with no pending polls
    fake.pending_polls = 0

    # When a job is submitted and polled once
    job_id = _submit(fake).json()["id"]
    body = _status(fake, job_id).json()

    # Then the first check is already SUCCESS
    assert body["status"] == "SUCCESS"


def test_pending_polls_defaults_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given FAKE_PENDING_POLLS in the environment
    monkeypatch.setenv("FAKE_PENDING_POLLS", "5")

    # When a fake is built without pending_polls, Then it uses the variable
    assert FakeUpstream().pending_polls == 5

    # And an explicit value wins
    assert FakeUpstream(pending_polls=1).pending_polls == 1


def test_unknown_job_id_is_404_failure(fake: FakeUpstream) -> None:
    # Given no job with this id
    # When its status is requested
    response = _status(fake, "00000000-0000-0000-0000-000000000000")

    # Then the answer is 404 with a FAILURE body
    assert response.status_code == 404
    assert response.json()["status"] == "FAILURE"


def test_invalid_json_is_400_failure(fake: FakeUpstream) -> None:
    # Given a body that is not JSON
    # When it is submitted
    response = requests.post(
        f"{fake.base_url}/sd/text2image/v1",
        headers={"API-Key": API_KEY},
        data=b"{not json",
        timeout=TIMEOUT,
    )

    # Then the answer is 400 FAILURE, JSON
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["status"] == "FAILURE"
    assert "JSON" in body["error"]


def test_post_without_content_type_is_still_parsed(fake: FakeUpstream) -> None:
    # Given a submit request that carries no Content-Type header (as the upstream example sends)
    request = requests.Request(
        "POST",
        f"{fake.base_url}/sd/text2image/v1",
        headers={"API-Key": API_KEY},
        data=json.dumps(_params(model_id="fake-instant", samples=2)).encode("utf-8"),
    ).prepare()
    assert "Content-Type" not in request.headers

    # When it is sent
    with requests.Session() as session:
        response = session.send(request, timeout=TIMEOUT)

    # Then the body was read as JSON (the magic model id and samples were honoured)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "SUCCESS"
    assert len(body["download_urls"]) == 2


# --------------------------------------------------------------------------- images


def test_images_are_valid_pngs_of_the_requested_size(fake: FakeUpstream) -> None:
    # Given a job for two 640x384 images
    urls = _run_to_success(fake, width=640, height=384, samples=2)
    assert len(urls) == 2

    for url in urls:
        # When each image is downloaded
        data = _download(url)

        # Then it is a well-formed 8-bit RGB PNG of exactly that size
        chunks = _png_chunks(data)
        kinds = [kind for kind, _ in chunks]
        assert kinds[0] == b"IHDR"
        assert kinds[-1] == b"IEND"
        width, height, depth, colour, _, _, _ = struct.unpack(">IIBBBBB", chunks[0][1])
        assert (width, height, depth, colour) == (640, 384, 8, 2)
        raw = zlib.decompress(b"".join(p for k, p in chunks if k == b"IDAT"))
        assert len(raw) == height * (1 + 3 * width)


def test_default_size_is_512_square_with_one_sample(fake: FakeUpstream) -> None:
    # Given a request with no width, height or samples
    params = _params()
    for name in ("width", "height", "samples"):
        params.pop(name)
    job_id = requests.post(
        f"{fake.base_url}/sd/text2image/v1",
        headers={"API-Key": API_KEY},
        data=json.dumps(params),
        timeout=TIMEOUT,
    ).json()["id"]
    fake.pending_polls = 0

    # When it completes and its image is downloaded
    urls = _status(fake, job_id).json()["download_urls"]
    data = _download(urls[0])

    # Then there is one 512x512 image
    assert len(urls) == 1
    assert struct.unpack(">II", data[16:24]) == (512, 512)


def test_images_are_deterministic_in_seed_and_prompt(fake: FakeUpstream) -> None:
    # Given two identical requests, one with another seed and one with another prompt
    first = _run_to_success(fake, samples=2)
    same = _run_to_success(fake, samples=2)
    other_seed = _run_to_success(fake, samples=2, seed=54321)
    other_prompt = _run_to_success(fake, samples=2, prompt="a cat")

    # When their images are downloaded
    a0, a1 = _download(first[0]), _download(first[1])

    # Then the same request gives the same bytes, each sample differs,
    # and another seed or prompt gives other bytes
    assert first != same  # distinct jobs, distinct URLs
    assert _download(same[0]) == a0
    assert _download(same[1]) == a1
    assert a0 != a1
    assert _download(other_seed[0]) != a0
    assert _download(other_prompt[0]) != a0
    # and a second download of the same URL is byte-identical
    assert _download(first[0]) == a0


def test_large_image_is_generated() -> None:
    # Given the largest usual size
    # When a 1024x1024 PNG is rendered
    data = make_png(1024, 1024, seed=1, prompt="p", model_id="sd1.5", index=0)

    # Then it decodes to the full pixel data
    chunks = _png_chunks(data)
    raw = zlib.decompress(b"".join(p for k, p in chunks if k == b"IDAT"))
    assert len(raw) == 1024 * (1 + 3 * 1024)


def test_image_of_unknown_job_or_index_is_404(fake: FakeUpstream) -> None:
    # Given a completed one-sample job
    urls = _run_to_success(fake)

    # When a sample index out of range or an unknown job is requested
    out_of_range = requests.get(urls[0].replace("/0.png", "/1.png"), timeout=TIMEOUT)
    unknown = requests.get(f"{fake.base_url}/images/nope/0.png", timeout=TIMEOUT)

    # Then both answer 404
    assert out_of_range.status_code == 404
    assert unknown.status_code == 404


# --------------------------------------------------------------------------- magic models


def test_fake_instant_succeeds_in_the_submit_answer(fake: FakeUpstream) -> None:
    # Given the fake-instant model
    # When a job is submitted
    body = _submit(fake, model_id="fake-instant", samples=2).json()

    # Then the submit answer is already SUCCESS with downloadable URLs
    assert body["status"] == "SUCCESS"
    assert len(body["download_urls"]) == 2
    assert _download(body["download_urls"][1])[:8] == b"\x89PNG\r\n\x1a\n"
    # and the status endpoint agrees
    assert _status(fake, body["id"]).json()["status"] == "SUCCESS"


def test_fake_failure_is_pending_once_then_failure(fake: FakeUpstream) -> None:
    # Given a job on the fake-failure model
    job_id = _submit(fake, model_id="fake-failure").json()["id"]

    # When it is polled
    first = _status(fake, job_id).json()
    second = _status(fake, job_id)
    third = _status(fake, job_id).json()

    # Then PENDING once, then FAILURE with an error message (and it stays FAILURE)
    assert first == {"status": "PENDING", "id": job_id}
    assert second.status_code == 200
    body = second.json()
    assert body["status"] == "FAILURE"
    assert body["id"] == job_id
    assert body["error"]
    assert "download_urls" not in body
    assert third == body


def test_fake_reject_fails_at_submit_without_a_job(fake: FakeUpstream) -> None:
    # Given the fake-reject model
    # When a job is submitted
    response = _submit(fake, model_id="fake-reject")

    # Then the submit answer itself is a 200 FAILURE with no id
    assert response.status_code == 200
    assert response.json() == {"status": "FAILURE", "error": "model_id 'fake-reject' not found"}
    assert fake.stats()["submits_by_model"] == {"fake-reject": 1}


def test_fake_flaky_answers_500_then_429_then_behaves(fake: FakeUpstream) -> None:
    # Given a job on the fake-flaky model
    job_id = _submit(fake, model_id="fake-flaky").json()["id"]

    # When it is polled the first time, Then 500 with a non-JSON body
    first = _status(fake, job_id)
    assert first.status_code == 500
    assert first.text == "internal error"

    # When it is polled the second time, Then 429 with Retry-After: 1
    second = _status(fake, job_id)
    assert second.status_code == 429
    assert second.headers["Retry-After"] == "1"

    # Then it behaves normally: PENDING pending_polls times, then SUCCESS
    for _ in range(PENDING_POLLS):
        assert _status(fake, job_id).json()["status"] == "PENDING"
    body = _status(fake, job_id).json()
    assert body["status"] == "SUCCESS"
    _download(body["download_urls"][0])


def test_fake_never_stays_pending(fake: FakeUpstream) -> None:
    # Given a job on the fake-never model
    job_id = _submit(fake, model_id="fake-never").json()["id"]

    # When it is polled many times
    answers = [_status(fake, job_id).json() for _ in range(PENDING_POLLS + 8)]

    # Then it is always PENDING
    assert all(answer == {"status": "PENDING", "id": job_id} for answer in answers)


def test_fake_broken_image_succeeds_but_images_are_404(fake: FakeUpstream) -> None:
    # Given a job on the fake-broken-image model that has succeeded
    urls = _run_to_success(fake, model_id="fake-broken-image", samples=2)
    assert len(urls) == 2

    # When its images are downloaded
    responses = [requests.get(url, timeout=TIMEOUT) for url in urls]

    # Then they answer 404
    assert [r.status_code for r in responses] == [404, 404]


# --------------------------------------------------------------------------- stats & hooks


def test_stats_count_requests_and_reset_clears_them(fake: FakeUpstream) -> None:
    # Given some traffic: two normal jobs run to success and downloaded, one reject, one 401
    for _ in range(2):
        _download(_run_to_success(fake)[0])
    _submit(fake, model_id="fake-reject")
    _status(fake, "x", key=None)

    # When the stats are read in-process and over HTTP
    in_process = fake.stats()
    over_http = requests.get(f"{fake.base_url}/__fake__/stats", timeout=TIMEOUT)

    # Then both report the same counters, and the two created jobs (not the rejected one)
    jobs = in_process.pop("jobs")
    assert in_process == {
        "submits": 3,
        "status_checks": 2 * (PENDING_POLLS + 1),
        "downloads": 2,
        "submits_by_model": {"sd1.5": 2, "fake-reject": 1},
        "rejected_auth": 1,
    }
    assert len(jobs) == 2
    assert all(job["status_checks"] == PENDING_POLLS + 1 for job in jobs.values())
    assert over_http.status_code == 200
    assert over_http.headers["Content-Type"] == "application/json"
    assert over_http.json() == {**in_process, "jobs": jobs}

    # When the fake is reset over HTTP
    job_id = _submit(fake).json()["id"]
    reset = requests.post(f"{fake.base_url}/__fake__/reset", timeout=TIMEOUT)

    # Then counters are zero and jobs are gone
    assert reset.status_code == 200
    assert fake.stats() == {
        "submits": 0,
        "status_checks": 0,
        "downloads": 0,
        "submits_by_model": {},
        "rejected_auth": 0,
        "jobs": {},
    }
    assert _status(fake, job_id).status_code == 404


# --------------------------------------------------------------------------- the SD 1.5 family


def _post(fake: FakeUpstream, kind: str, body: dict[str, Any]) -> Any:
    response = requests.post(
        f"{fake.base_url}/sd/{kind}/v1", headers={"API-Key": API_KEY}, json=body, timeout=TIMEOUT
    )
    assert response.status_code == 200, response.text
    return response.json()


CONTROLNET = {
    "model_id": "sd1.5",
    "prompt": "a dancer",
    "controlnets": ["canny", "openpose"],
    "init_images": ["https://e.example/edges.png", "https://e.example/pose.png"],
    "controlnet_weights": [0.5, 0.8],
    "starting_control_steps": [],
    "ending_control_steps": [],
    "width": 64,
    "height": 48,
}


@pytest.mark.parametrize(
    ("fields", "scale"),
    [({"hires": True}, 2), ({"upscale": "2x"}, 2), ({"hires": False}, 1), ({}, 1)],
)
def test_hires_and_upscale_paint_twice_the_size(
    fake: FakeUpstream, fields: dict[str, Any], scale: int
) -> None:
    # Given a 64x48 job with Hi-res Fix or a 2x upscale (or neither)
    fake.pending_polls = 0
    job_id = _post(fake, "text2image", _params(**fields))["id"]
    # When its image is downloaded
    data = _download(_status(fake, job_id).json()["download_urls"][0])
    # Then it is that size times the scale
    assert struct.unpack(">II", data[16:24]) == (64 * scale, 48 * scale)


def test_every_job_records_the_body_it_was_sent_as_received(fake: FakeUpstream) -> None:
    # Given a body with fields of the whole family, some the fake does nothing with
    body = _params(scheduler="DDIMScheduler", clip_skip=2, ip_adapter="[ip-adapter-plus_sd15]")
    # When it is submitted
    job_id = _post(fake, "text2image", body)["id"]
    # Then the stats show it for that job, field for field
    stats = requests.get(f"{fake.base_url}/__fake__/stats", timeout=TIMEOUT).json()
    assert stats["jobs"][job_id]["request"] == body


def test_controlnet_runs_on_its_own_routes(fake: FakeUpstream) -> None:
    # Given a multi-ControlNet body
    job_id = _post(fake, "controlnet", CONTROLNET)["id"]
    # When it is followed on controlnet's status route
    fake.pending_polls = 0
    answer = requests.get(
        f"{fake.base_url}/sd/controlnet/v1/status/{job_id}",
        headers={"API-Key": API_KEY},
        timeout=TIMEOUT,
    ).json()
    # Then it succeeds, a controlnet job
    assert answer["status"] == "SUCCESS"
    assert fake.stats()["jobs"][job_id]["kind"] == "controlnet"


@pytest.mark.parametrize(
    ("kind", "body", "named"),
    [
        ("controlnet", {**CONTROLNET, "controlnets": []}, "controlnets"),
        ("controlnet", {k: v for k, v in CONTROLNET.items() if k != "init_images"}, "init_images"),
        ("controlnet", {**CONTROLNET, "controlnet_weights": [0.5]}, "controlnet_weights"),
        ("text2image", _params(hires=True, samples=2), "hires"),
    ],
)
def test_what_the_upstream_refuses_is_a_failure_without_a_job(
    fake: FakeUpstream, kind: str, body: dict[str, Any], named: str
) -> None:
    answer = _post(fake, kind, body)
    assert answer["status"] == "FAILURE"
    assert named in answer["error"]
    assert fake.stats()["jobs"] == {}


# --------------------------------------------------------------------------- lifecycle & CLI


def test_context_manager_starts_and_stops_the_server() -> None:
    # Given a fake used as a context manager on port 0
    with FakeUpstream(api_key=API_KEY) as fake:
        url = fake.base_url
        # Then it serves on a real port
        assert not url.endswith(":0")
        assert requests.get(f"{url}/__fake__/stats", timeout=TIMEOUT).status_code == 200

    # When the block exits, Then the port no longer answers
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/__fake__/stats", timeout=TIMEOUT)


def test_cli_serves_and_stops_on_sigterm() -> None:
    # Given the CLI started on a free port with a key from the environment
    port = _free_port()
    env = {**os.environ, "FAKE_UPSTREAM_API_KEY": "cli-key", "FAKE_UPSTREAM_PORT": str(port)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "local.fake_upstream"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        # When it prints its URL
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        base_url = f"http://127.0.0.1:{port}"
        assert base_url in line

        # Then it speaks the protocol with the configured key
        ok = requests.post(
            f"{base_url}/sd/text2image/v1",
            headers={"API-Key": "cli-key"},
            data=json.dumps(_params(model_id="fake-instant")),
            timeout=TIMEOUT,
        )
        assert ok.json()["status"] == "SUCCESS"
        denied = requests.get(f"{base_url}/sd/text2image/v1/status/x", timeout=TIMEOUT)
        assert denied.status_code == 401

        # When it receives SIGTERM, Then it exits cleanly
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
