"""The routes users of Replicate and fal expect, over the local stack: a synchronous wait, the
list of one's jobs, cancelling one, and the Swagger UI. HTTP only, as a client would."""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest

from tests.e2e.conftest import Gateway

pytestmark = pytest.mark.network


def caller() -> str:
    return f"user-{secrets.token_hex(4)}"


def submit(gateway: Gateway, model_id: str, who: str, **headers: str) -> Any:
    return gateway.submit({"model_id": model_id, "prompt": "p"}, caller=who, headers=headers)


def test_prefer_wait_answers_200_with_the_images_when_the_job_ends_in_time(
    gateway: Gateway,
) -> None:
    # Given a job the upstream finishes at once, submitted with Prefer: wait=10
    response = submit(gateway, "fake-instant", caller(), Prefer="wait=10")
    # Then the answer is the finished job, with its URLs
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["status"], len(answer["download_urls"])) == ("SUCCESS", 1)
    assert response.headers["Preference-Applied"] == "wait=10"


def test_prefer_wait_answers_202_when_the_job_is_still_running(gateway: Gateway) -> None:
    started = time.monotonic()
    response = submit(gateway, "fake-never", caller(), Prefer="wait=2")
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "PENDING"
    assert time.monotonic() - started >= 2


def test_prefer_wait_long_polls_a_status_get(gateway: Gateway) -> None:
    who = caller()
    job_id = submit(gateway, "sd1.5", who).json()["id"]
    response = gateway.session.get(
        f"{gateway.url}/sd/text2image/v1/status/{job_id}",
        headers={"X-Local-Caller": who, "Prefer": "wait=20"},
        timeout=30,
    )
    assert (response.status_code, response.json()["status"]) == (200, "SUCCESS")


def test_the_list_pages_through_exactly_the_callers_jobs_newest_first(gateway: Gateway) -> None:
    # Given five jobs of one caller, and one of another
    who, other = caller(), caller()
    mine = [submit(gateway, "fake-instant", who).json()["id"] for _ in range(5)]
    theirs = submit(gateway, "fake-instant", other).json()["id"]
    # When the caller pages through its list two at a time
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = gateway.session.get(
            f"{gateway.url}/v1/jobs", params=params, headers={"X-Local-Caller": who}, timeout=30
        )
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["jobs"]) <= 2
        seen += [job["id"] for job in page["jobs"]]
        pages += 1
        cursor = page.get("next_cursor")
        if not cursor:
            break
    # Then it saw its five jobs, newest first, and never the other caller's
    assert seen == list(reversed(mine))
    assert theirs not in seen
    assert pages == 3
    # And the other caller's list holds only its own job
    response = gateway.session.get(
        f"{gateway.url}/v1/jobs",
        params={"limit": 2},
        headers={"X-Local-Caller": other},
        timeout=30,
    )
    assert [job["id"] for job in response.json()["jobs"]] == [theirs]


def test_a_cursor_made_for_another_caller_is_refused(gateway: Gateway) -> None:
    who, other = caller(), caller()
    for _ in range(2):
        submit(gateway, "fake-instant", who)
    page = gateway.session.get(
        f"{gateway.url}/v1/jobs", params={"limit": 1}, headers={"X-Local-Caller": who}, timeout=30
    ).json()
    response = gateway.session.get(
        f"{gateway.url}/v1/jobs",
        params={"limit": 1, "cursor": page["next_cursor"]},
        headers={"X-Local-Caller": other},
        timeout=30,
    )
    assert response.status_code == 400
    assert response.json()["details"][0]["field"] == "cursor"


def test_the_list_filters_by_status(gateway: Gateway) -> None:
    who = caller()
    done = submit(gateway, "fake-instant", who, Prefer="wait=10").json()["id"]
    running = submit(gateway, "fake-never", who).json()["id"]
    response = gateway.session.get(
        f"{gateway.url}/v1/jobs",
        params={"status": "PENDING"},
        headers={"X-Local-Caller": who},
        timeout=30,
    )
    assert [job["id"] for job in response.json()["jobs"]] == [running]
    assert done != running


def test_cancel_ends_a_running_job_cancelled_and_tells_the_bus(gateway: Gateway) -> None:
    # Given a job the upstream never finishes
    who = caller()
    job_id = submit(gateway, "fake-never", who).json()["id"]
    cancel = f"{gateway.url}/v1/jobs/{job_id}/cancel"
    # When another caller tries to cancel it / Then it is unknown to them
    assert (
        gateway.session.post(cancel, headers={"X-Local-Caller": caller()}, timeout=30).status_code
        == 404
    )
    # When its caller cancels it
    response = gateway.session.post(cancel, headers={"X-Local-Caller": who}, timeout=30)
    # Then it ends at once, FAILURE CANCELLED, and says so to anyone listening
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["error_code"]) == ("FAILURE", "CANCELLED")
    view = gateway.wait(job_id, caller=who, timeout=5)
    assert view["error_code"] == "CANCELLED"
    event = gateway.completion(lambda e: e["detail"].get("job_id") == job_id)
    assert event["detail"]["error_code"] == "CANCELLED"
    # And cancelling again changes nothing
    again = gateway.session.post(cancel, headers={"X-Local-Caller": who}, timeout=30)
    assert (again.status_code, again.json()["error_code"]) == (200, "CANCELLED")


def test_cancel_leaves_a_finished_job_as_it_is(gateway: Gateway) -> None:
    who = caller()
    job_id = submit(gateway, "fake-instant", who, Prefer="wait=10").json()["id"]
    response = gateway.session.post(
        f"{gateway.url}/v1/jobs/{job_id}/cancel", headers={"X-Local-Caller": who}, timeout=30
    )
    assert response.status_code == 409
    assert (response.json()["status"], response.json()["error_code"]) == ("SUCCESS", "JOB_FINISHED")
    assert gateway.wait(job_id, caller=who)["status"] == "SUCCESS"


def test_the_swagger_ui_and_the_document_describe_every_route(gateway: Gateway) -> None:
    ui = gateway.session.get(f"{gateway.url}/swagger", timeout=30)
    assert ui.status_code == 200
    assert "text/html" in ui.headers["Content-Type"]
    assert "swagger" in ui.text.lower()
    document = gateway.session.get(f"{gateway.url}/openapi.json", timeout=30).json()
    assert {"/v1/jobs", "/v1/jobs/{job_id}/cancel", "/sd/{kind}/v1/status/{job_id}"} <= set(
        document["paths"]
    )
    assert {"apiKey", "sigv4"} <= set(document["components"]["securitySchemes"])
