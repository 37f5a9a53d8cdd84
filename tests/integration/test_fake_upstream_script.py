"""Integration tests for the fake upstream's contract beyond text2image basics: the three kinds,
per-job stats, and the script hook (DESIGN.md, "The fake upstream — contract").

Everything goes over real HTTP to the session's fake (the ``upstream`` fixture).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from local.fake_upstream import FakeUpstream
from tests.support.stack import UPSTREAM_KEY

pytestmark = pytest.mark.network

TIMEOUT = 5
MODEL = "scripted-model"
INIT_IMAGE = "https://example.com/in.png"
MASK_IMAGE = "https://example.com/mask.png"
# What each kind needs on top of text2image's fields.
EXTRA: dict[str, dict[str, Any]] = {
    "text2image": {},
    "image2image": {"init_image": INIT_IMAGE, "strength": 0.6},
    "inpainting": {"init_image": INIT_IMAGE, "mask_image": MASK_IMAGE},
}


@pytest.fixture
def fake(upstream: FakeUpstream) -> Iterator[FakeUpstream]:
    """The session's fake, reset before (by ``upstream``) and after: scripts must not leak."""
    yield upstream
    upstream.reset()


# --------------------------------------------------------------------------- helpers


def _submit(
    fake: FakeUpstream,
    kind: str = "text2image",
    key: str = UPSTREAM_KEY,
    timeout: float = TIMEOUT,
    **overrides: Any,
) -> requests.Response:
    params: dict[str, Any] = {
        "model_id": MODEL,
        "prompt": "a red bicycle",
        "samples": 1,
        "width": 32,
        "height": 32,
        "seed": 7,
        **EXTRA[kind],
        **overrides,
    }
    return requests.post(
        f"{fake.base_url}/sd/{kind}/v1",
        headers={"API-Key": key},
        data=json.dumps({k: v for k, v in params.items() if v is not None}),
        timeout=timeout,
    )


def _status(fake: FakeUpstream, job_id: str, kind: str = "text2image") -> requests.Response:
    return requests.get(
        f"{fake.base_url}/sd/{kind}/v1/status/{job_id}",
        headers={"API-Key": UPSTREAM_KEY},
        timeout=TIMEOUT,
    )


def _script(fake: FakeUpstream, **spec: Any) -> None:
    response = requests.post(f"{fake.base_url}/__fake__/script", json=spec, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "OK", "model_id": spec["model_id"]}


def _stats(fake: FakeUpstream) -> dict[str, Any]:
    response = requests.get(f"{fake.base_url}/__fake__/stats", timeout=TIMEOUT)
    assert response.status_code == 200
    stats: dict[str, Any] = response.json()
    return stats


def _only_job(fake: FakeUpstream) -> tuple[str, dict[str, Any]]:
    jobs = _stats(fake)["jobs"]
    assert len(jobs) == 1
    ((job_id, job),) = jobs.items()
    return job_id, job


# --------------------------------------------------------------------------- kinds


@pytest.mark.parametrize("kind", ["text2image", "image2image", "inpainting"])
def test_each_kind_runs_a_job_on_its_own_routes(fake: FakeUpstream, kind: str) -> None:
    # Given a valid request of this kind for two samples
    # When it is submitted and polled past pending_polls
    submit = _submit(fake, kind, samples=2)
    job_id = submit.json()["id"]
    answers = [_status(fake, job_id, kind).json() for _ in range(fake.pending_polls + 1)]

    # Then it is PENDING, then SUCCESS with the fake's own image URLs, which serve PNGs
    assert submit.status_code == 200
    assert submit.json() == {"status": "PENDING", "id": job_id}
    assert [a["status"] for a in answers] == ["PENDING"] * fake.pending_polls + ["SUCCESS"]
    urls = answers[-1]["download_urls"]
    assert urls == [f"{fake.base_url}/images/{job_id}/{i}.png" for i in range(2)]
    image = requests.get(urls[1], timeout=TIMEOUT)
    assert image.status_code == 200
    assert image.content[:8] == b"\x89PNG\r\n\x1a\n"
    # and the job is recorded with its kind
    assert _stats(fake)["jobs"][job_id]["kind"] == kind


@pytest.mark.parametrize(
    ("kind", "missing"),
    [("image2image", "init_image"), ("inpainting", "mask_image"), ("inpainting", "init_image")],
)
def test_image_kinds_without_their_source_images_are_refused(
    fake: FakeUpstream, kind: str, missing: str
) -> None:
    # Given a request of an image kind without one of its required image URLs
    # When it is submitted
    without: dict[str, Any] = {missing: None}
    response = _submit(fake, kind, **without)

    # Then the upstream answers a 200 FAILURE naming the field, and creates no job
    assert response.status_code == 200
    assert response.json() == {"status": "FAILURE", "error": f"{missing} is required for {kind}"}
    stats = _stats(fake)
    assert stats["submits"] == 1
    assert stats["jobs"] == {}


def test_a_job_is_unknown_on_another_kinds_status_route(fake: FakeUpstream) -> None:
    # Given an image2image job
    job_id = _submit(fake, "image2image").json()["id"]

    # When its status is asked on the text2image and inpainting routes
    others = [_status(fake, job_id, kind) for kind in ("text2image", "inpainting")]

    # Then both answer 404 FAILURE, and its own route knows it
    for response in others:
        assert response.status_code == 404
        assert response.json()["status"] == "FAILURE"
    assert _status(fake, job_id, "image2image").json() == {"status": "PENDING", "id": job_id}
    assert _stats(fake)["jobs"][job_id]["status_checks"] == 1


# --------------------------------------------------------------------------- stats


def test_stats_record_each_job_with_its_times_and_checks(fake: FakeUpstream) -> None:
    # Given a normal job, a fake-instant job and a fake-failure job
    before = time.time()
    pending_id = _submit(fake).json()["id"]
    instant_id = _submit(fake, model_id="fake-instant").json()["id"]
    failure_id = _submit(fake, "inpainting", model_id="fake-failure").json()["id"]
    after_submit = time.time()

    # When the stats are read before any poll
    jobs = _stats(fake)["jobs"]

    # Then each job has its model, kind and submit time; only the instant one is complete
    assert set(jobs) == {pending_id, instant_id, failure_id}
    assert jobs[pending_id]["model_id"] == MODEL
    assert jobs[failure_id]["kind"] == "inpainting"
    for job in jobs.values():
        assert before <= job["submitted_at"] <= after_submit
        assert job["status_checks"] == 0
    assert jobs[pending_id]["completed_at"] is None
    assert jobs[failure_id]["completed_at"] is None
    assert jobs[instant_id]["completed_at"] == jobs[instant_id]["submitted_at"]

    # When the pending and failing jobs are polled to their end
    for _ in range(fake.pending_polls + 1):
        _status(fake, pending_id)
    for _ in range(2):
        _status(fake, failure_id, "inpainting")
    done = time.time()
    jobs = _stats(fake)["jobs"]

    # Then their completion times are set (FAILURE counts as done) and checks are counted
    assert after_submit <= jobs[pending_id]["completed_at"] <= done
    assert after_submit <= jobs[failure_id]["completed_at"] <= done
    assert jobs[pending_id]["status_checks"] == fake.pending_polls + 1
    assert jobs[failure_id]["status_checks"] == 2


# --------------------------------------------------------------------------- script: submit


def test_scripted_submit_with_accept_creates_the_job_whatever_it_answers(
    fake: FakeUpstream,
) -> None:
    # Given a script: the first submit takes the job but answers 502 with a raw body
    _script(fake, model_id=MODEL, submit=[{"code": 502, "body": "Bad Gateway", "accept": True}])

    # When a job is submitted
    response = _submit(fake)

    # Then the caller sees the 502 as scripted
    assert response.status_code == 502
    assert response.text == "Bad Gateway"
    assert response.headers["Content-Type"].startswith("text/plain")

    # And the job exists upstream and is counted
    stats = _stats(fake)
    assert stats["submits"] == 1
    assert stats["submits_by_model"] == {MODEL: 1}
    job_id, job = _only_job(fake)
    assert (job["model_id"], job["kind"], job["completed_at"]) == (MODEL, "text2image", None)
    # and it runs like any job
    assert _status(fake, job_id).json() == {"status": "PENDING", "id": job_id}

    # When another job is submitted, Then the script is used up: normal behaviour
    assert _submit(fake).json()["status"] == "PENDING"
    assert len(_stats(fake)["jobs"]) == 2


def test_scripted_submit_without_accept_creates_no_job(fake: FakeUpstream) -> None:
    # Given a script whose submit answer echoes {{id}} but does not accept the job
    _script(fake, model_id=MODEL, submit=[{"code": 500, "json": {"id": "{{id}}"}}])

    # When a job is submitted
    response = _submit(fake)

    # Then the answer is the scripted one, with a fresh id that names no job
    assert response.status_code == 500
    fresh = response.json()["id"]
    assert str(uuid.UUID(fresh)) == fresh
    stats = _stats(fake)
    assert stats["submits"] == 1
    assert stats["jobs"] == {}
    assert _status(fake, fresh).status_code == 404


def test_only_authorised_valid_submits_consume_scripted_answers(fake: FakeUpstream) -> None:
    # Given a one-answer submit script
    _script(fake, model_id=MODEL, submit=[{"code": 503}])

    # When a submit with a wrong key and an image2image submit without init_image arrive
    denied = _submit(fake, key="wrong")
    invalid = _submit(fake, "image2image", init_image=None)

    # Then they get their usual answers and the scripted one is still there for the next submit
    assert denied.status_code == 401
    assert invalid.json()["status"] == "FAILURE"
    scripted = _submit(fake)
    assert scripted.status_code == 503
    assert scripted.content == b""


def test_placeholders_are_replaced_inside_every_string_of_a_scripted_json(
    fake: FakeUpstream,
) -> None:
    # Given scripted submit and status answers using {{id}} and {{base_url}} at any depth
    answer = {
        "status": "SUCCESS",
        "id": "{{id}}",
        "download_urls": ["{{base_url}}/images/{{id}}/0.png"],
        "nested": {"job-{{id}}": [{"where": "at {{base_url}}!"}, 3, None, True]},
    }
    _script(
        fake,
        model_id=MODEL,
        submit=[{"json": answer, "accept": True}],
        status=[{"code": 202, "json": "{{id}}"}],
    )

    # When a job is submitted and polled
    submitted = _submit(fake).json()
    job_id, _ = _only_job(fake)
    status = _status(fake, job_id)

    # Then both placeholders are replaced by the job's id and the fake's base URL
    base = fake.base_url
    assert submitted == {
        "status": "SUCCESS",
        "id": job_id,
        "download_urls": [f"{base}/images/{job_id}/0.png"],
        "nested": {f"job-{job_id}": [{"where": f"at {base}!"}, 3, None, True]},
    }
    assert status.status_code == 202
    assert status.json() == job_id


# --------------------------------------------------------------------------- script: status, images


def test_scripted_status_answers_are_shared_by_the_models_jobs_then_normal(
    fake: FakeUpstream,
) -> None:
    # Given two jobs of a model scripted to answer 429 (with Retry-After) then 500 on status
    first = _submit(fake).json()["id"]
    second = _submit(fake).json()["id"]
    _script(
        fake,
        model_id=MODEL,
        status=[
            {"code": 429, "headers": {"Retry-After": 3}, "json": {"error": "slow down"}},
            {"code": 500, "body": "oops", "headers": {"Content-Type": "text/html"}},
        ],
    )

    # When each job is polled once
    throttled = _status(fake, first)
    broken = _status(fake, second)

    # Then they consume the answers in order, with the scripted headers passed through
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "3"
    assert throttled.json() == {"error": "slow down"}
    assert broken.status_code == 500
    assert broken.headers["Content-Type"] == "text/html"
    assert broken.text == "oops"

    # And then the jobs behave normally; scripted checks are counted but are not polls
    answers = [_status(fake, first).json()["status"] for _ in range(fake.pending_polls + 1)]
    assert answers == ["PENDING"] * fake.pending_polls + ["SUCCESS"]
    stats = _stats(fake)
    assert stats["status_checks"] == 2 + fake.pending_polls + 1
    assert stats["jobs"][first]["status_checks"] == 1 + fake.pending_polls + 1
    assert stats["jobs"][second]["status_checks"] == 1


def test_scripted_image_answers_apply_to_the_models_downloads(fake: FakeUpstream) -> None:
    # Given a finished job of a model whose first image download is scripted to 503
    _script(fake, model_id=MODEL, images=[{"code": 503, "headers": {"Retry-After": "1"}}])
    fake.pending_polls = 0
    job_id = _submit(fake).json()["id"]
    url = _status(fake, job_id).json()["download_urls"][0]

    # When the image is downloaded twice
    first = requests.get(url, timeout=TIMEOUT)
    second = requests.get(url, timeout=TIMEOUT)

    # Then the first answer is scripted and the second is the real PNG
    assert (first.status_code, first.headers["Retry-After"]) == (503, "1")
    assert second.status_code == 200
    assert second.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert _stats(fake)["downloads"] == 2


# --------------------------------------------------------------------------- script: timing


def test_delayed_answer_does_not_block_other_requests(fake: FakeUpstream) -> None:
    # Given a submit scripted to accept the job and answer after 1.5 s
    delay = 1.5
    _script(
        fake,
        model_id=MODEL,
        submit=[
            {"json": {"status": "PENDING", "id": "{{id}}"}, "delay_seconds": delay, "accept": True}
        ],
    )
    results: list[requests.Response] = []
    started = time.monotonic()
    slow = threading.Thread(target=lambda: results.append(_submit(fake)))
    slow.start()

    # When other requests arrive while it waits
    deadline = time.monotonic() + delay / 2
    while not _stats(fake)["jobs"] and time.monotonic() < deadline:
        time.sleep(0.02)
    jobs = _stats(fake)["jobs"]
    other = _submit(fake, model_id="another-model")
    answered_others = time.monotonic() - started

    # Then they are answered at once, and the delayed job already exists upstream
    assert answered_others < delay / 2
    assert len(jobs) == 1
    assert other.json()["status"] == "PENDING"

    # And the delayed answer comes after its delay, naming the job created before it
    slow.join(timeout=TIMEOUT)
    assert time.monotonic() - started >= delay
    assert results[0].json() == {"status": "PENDING", "id": next(iter(jobs))}


def test_a_client_hanging_up_during_a_delay_does_not_harm_the_fake(fake: FakeUpstream) -> None:
    # Given a status answer scripted to come after 0.6 s
    job_id = _submit(fake).json()["id"]
    _script(fake, model_id=MODEL, status=[{"json": {}, "delay_seconds": 0.6}])

    # When the client gives up after 0.1 s
    with pytest.raises(requests.ReadTimeout):
        requests.get(
            f"{fake.base_url}/sd/text2image/v1/status/{job_id}",
            headers={"API-Key": UPSTREAM_KEY},
            timeout=0.1,
        )
    time.sleep(0.7)

    # Then the fake carries on serving, and the answer was consumed
    assert _status(fake, job_id).json() == {"status": "PENDING", "id": job_id}


def test_completes_after_seconds_is_time_based(fake: FakeUpstream) -> None:
    # Given a model that completes 0.5 s after submit, and polls that would never suffice
    fake.pending_polls = 1000
    _script(fake, model_id=MODEL, completes_after_seconds=0.5)
    polled = _submit(fake).json()["id"]
    unpolled = _submit(fake).json()["id"]

    # When polled at once, Then it is PENDING and not complete
    assert _status(fake, polled).json() == {"status": "PENDING", "id": polled}
    assert _stats(fake)["jobs"][polled]["completed_at"] is None

    # When 0.5 s have passed, Then the next check is SUCCESS
    time.sleep(0.6)
    body = _status(fake, polled).json()
    assert body["status"] == "SUCCESS"
    assert body["download_urls"] == [f"{fake.base_url}/images/{polled}/0.png"]

    # And both jobs completed exactly 0.5 s after their submit, polled or not
    jobs = _stats(fake)["jobs"]
    for job_id in (polled, unpolled):
        job = jobs[job_id]
        assert job["completed_at"] == pytest.approx(job["submitted_at"] + 0.5)


# --------------------------------------------------------------------------- script: lifecycle


def test_a_later_script_replaces_the_earlier_one(fake: FakeUpstream) -> None:
    # Given a script of two 500s and a time-based completion, replaced by one of a single 418
    job_id = _submit(fake).json()["id"]
    _script(fake, model_id=MODEL, status=[{"code": 500}, {"code": 500}], submit=[{"code": 500}])
    _script(fake, model_id=MODEL, status=[{"code": 418}])

    # When the job is polled twice and another job submitted
    codes = [_status(fake, job_id).status_code for _ in range(2)]
    submit = _submit(fake)

    # Then only the new script's answers are used
    assert codes == [418, 200]
    assert submit.status_code == 200


def test_reset_clears_scripts(fake: FakeUpstream) -> None:
    # Given a scripted submit answer and a time-based completion
    fake.script({"model_id": MODEL, "submit": [{"code": 500}], "completes_after_seconds": 60})

    # When the fake is reset over HTTP
    assert requests.post(f"{fake.base_url}/__fake__/reset", timeout=TIMEOUT).status_code == 200

    # Then submits and polls behave normally again
    fake.pending_polls = 0
    submit = _submit(fake)
    assert submit.status_code == 200
    assert _status(fake, submit.json()["id"]).json()["status"] == "SUCCESS"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "invalid JSON"),
        (b"[]", "must be a JSON object"),
        (b"{}", "model_id"),
        (b'{"model_id": "m", "sleep": 1}', "unknown script keys"),
        (b'{"model_id": "m", "status": {}}', "status must be a list"),
        (b'{"model_id": "m", "submit": [1]}', "submit[0] must be an object"),
        (b'{"model_id": "m", "submit": [{"code": "200"}]}', "submit[0].code"),
        (b'{"model_id": "m", "status": [{"code": 99}]}', "status[0].code"),
        (b'{"model_id": "m", "images": [{"json": 1, "body": "x"}]}', "both json and body"),
        (b'{"model_id": "m", "submit": [{"body": 1}]}', "body must be a string"),
        (b'{"model_id": "m", "submit": [{"delay_seconds": -1}]}', "delay_seconds"),
        (b'{"model_id": "m", "submit": [{"accept": "yes"}]}', "accept must be a boolean"),
        (b'{"model_id": "m", "submit": [{"headers": {"X": "a\\r\\nB: c"}}]}', "not a valid"),
        (b'{"model_id": "m", "submit": [{"headers": {"Content-Length": "1"}}]}', "set by the fake"),
        (b'{"model_id": "m", "submit": [{"tries": 1}]}', "unknown keys"),
        (b'{"model_id": "m", "completes_after_seconds": -1}', "completes_after_seconds"),
    ],
)
def test_invalid_scripts_are_refused_with_400(
    fake: FakeUpstream, body: bytes, message: str
) -> None:
    # Given a malformed script body
    # When it is posted
    response = requests.post(f"{fake.base_url}/__fake__/script", data=body, timeout=TIMEOUT)

    # Then it is refused with a 400 FAILURE saying why, and nothing is staged
    assert response.status_code == 400
    answer = response.json()
    assert answer["status"] == "FAILURE"
    assert message in answer["error"]
    assert _submit(fake, model_id="m").json()["status"] == "PENDING"
