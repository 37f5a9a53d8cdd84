"""Off the happy path, end to end over HTTP: upstreams that answer oddly, slowly, with long
Retry-After or redirects, and image URLs built to slip past the allow-list. The upstream's POST
count comes from the fake's /__fake__/stats; listeners on free ports prove that no request and
no key reaches another host.

(Runs before test_reliability.py, whose last test searches everything the session printed and
answered for the upstream key.)"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import E2E_UPSTREAM_KEY, Gateway

JSON = {"Content-Type": "application/json"}


class Listener:
    """A TCP listener on a free port that records every byte anyone sends it."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._socket = socket.socket()
        self._socket.bind((host, 0))
        self._socket.listen(16)
        self._socket.settimeout(0.2)
        self.host, self.port = host, self._socket.getsockname()[1]
        self.connections = 0
        self.received = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._socket.accept()
            except OSError:
                continue
            self.connections += 1
            with conn:
                conn.settimeout(1)
                try:
                    self.received += conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._socket.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def unique_model(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def submit(gateway: Gateway, model: str, key: str | None = None) -> str:
    headers = {**JSON, **({"Idempotency-Key": key} if key else {})}
    response = gateway.submit({"model_id": model, "prompt": "a fox"}, headers=headers)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def posts_for(gateway: Gateway, model: str) -> int:
    count: int = gateway.upstream_stats()["submits_by_model"].get(model, 0)
    return count


# --------------------------------------------------------------------------- money


@pytest.mark.parametrize(
    "answer",
    [
        {"code": 502, "body": "<html>502 Bad Gateway</html>"},
        {"code": 200, "json": {"status": "PENDING"}},
        {"code": 200, "body": "<html>queued</html>"},
    ],
    ids=["502-after-accepting", "pending-without-id", "2xx-not-json"],
)
def test_an_answer_that_may_hide_a_charge_keeps_the_key_and_never_posts_again(
    gateway: Gateway, answer: dict[str, Any]
) -> None:
    # Given an upstream that takes the job, then answers something that does not prove it
    model = unique_model("ambiguous")
    gateway.script({"model_id": model, "submit": [{**answer, "accept": True}]})
    key = f"order-{uuid.uuid4()}"
    # When a client submits with an Idempotency-Key, and retries with it after the job ended
    job_id = submit(gateway, model, key)
    view = gateway.wait(job_id, timeout=20)
    retry = gateway.submit(
        {"model_id": model, "prompt": "a fox"}, headers={**JSON, "Idempotency-Key": key}
    )
    # Then the job ended with a code saying the upstream may hold it
    assert view["status"] == "FAILURE"
    assert view["error_code"] == "UPSTREAM_OUTCOME_UNKNOWN"
    assert "may have accepted" in view["error"]
    # And the retry is the same job: the upstream got one POST in all
    assert retry.json()["id"] == job_id
    assert posts_for(gateway, model) == 1


def test_a_45_second_upstream_post_does_not_hold_the_caller_or_charge_twice(
    gateway: Gateway,
) -> None:
    # Given an upstream that takes 45 s to answer the POST (after taking the job)
    model = unique_model("slow-post")
    gateway.script(
        {
            "model_id": model,
            "submit": [
                {
                    "code": 200,
                    "accept": True,
                    "delay_seconds": 45,
                    "json": {"status": "PENDING", "id": "{{id}}"},
                }
            ],
            "completes_after_seconds": 1,
        }
    )
    key = f"order-{uuid.uuid4()}"
    # When a client submits, and retries with the same key while the POST is still open
    started = time.monotonic()
    job_id = submit(gateway, model, key)
    answered_in = time.monotonic() - started
    time.sleep(2)
    retry = gateway.submit(
        {"model_id": model, "prompt": "a fox"}, headers={**JSON, "Idempotency-Key": key}
    )
    # Then the caller had its job id well inside API Gateway's 30 s
    assert answered_in < 5
    assert retry.status_code == 202
    assert retry.json()["id"] == job_id
    # And the job still ends SUCCESS, from the one POST
    view = gateway.wait(job_id, timeout=90)
    assert view["status"] == "SUCCESS", view
    assert posts_for(gateway, model) == 1


def test_an_hour_of_retry_after_is_a_wait_in_the_workflow_capped_by_the_deadline(
    gateway: Gateway,
) -> None:
    # Given an upstream that answers every status check 429 with Retry-After: 3600
    model = unique_model("rate-limited")
    limited = {"code": 429, "headers": {"Retry-After": "3600"}, "body": "slow down"}
    gateway.script({"model_id": model, "status": [limited] * 50})
    # When a job is submitted (the stack's deadline is 20 s)
    started = time.monotonic()
    job_id = submit(gateway, model)
    view = gateway.wait(job_id, timeout=60)
    # Then it ended at its deadline, TIMED_OUT, not after an hour and not as an internal error
    assert view["status"] == "FAILURE"
    assert view["error_code"] == "TIMED_OUT"
    assert time.monotonic() - started < 40
    # And none of its functions was killed by its own timeout on the way (this job's lines only:
    # the stack's output is every test's; the lines are shown if it fails)
    killed = [
        line
        for line in gateway.logs().splitlines()
        if "Sandbox.Timedout" in line and job_id in line
    ]
    assert not killed, "\n".join(line[:600] for line in killed[:5])


def test_a_short_retry_after_on_submit_waits_and_sends_again(gateway: Gateway) -> None:
    # Given an upstream that refuses the first POST with 429 and Retry-After: 2
    model = unique_model("busy")
    gateway.script(
        {
            "model_id": model,
            "submit": [{"code": 429, "headers": {"Retry-After": "2"}, "body": "busy"}],
        }
    )
    # When a job is submitted
    job_id = submit(gateway, model)
    # Then it is sent again after the wait, and succeeds: two POSTs, one job upstream
    assert gateway.wait(job_id, timeout=40)["status"] == "SUCCESS"
    assert posts_for(gateway, model) == 2


# --------------------------------------------------------------------------- security


def test_a_backslash_url_does_not_reach_the_host_behind_it(gateway: Gateway) -> None:
    # Given an upstream whose SUCCESS lists an image URL that a URL parser reads as the allowed
    # 127.0.0.1, while an HTTP client would connect to another host (127.0.0.2 here)
    hidden = Listener("127.0.0.2")
    try:
        model = unique_model("backslash")
        fake_host = gateway.upstream_url.split("//", 1)[1]
        sneaky = f"http://127.0.0.2:{hidden.port}\\@{fake_host}/images/x/0.png"
        success = {
            "code": 200,
            "json": {"status": "SUCCESS", "id": "{{id}}", "download_urls": [sneaky]},
        }
        gateway.script({"model_id": model, "status": [success] * 5})
        # When the job runs
        view = gateway.wait(submit(gateway, model), timeout=40)
        # Then the image was refused and the hidden host was never contacted
        assert view["status"] == "FAILURE"
        assert view["error_code"] == "IMAGE_REJECTED"
        assert hidden.connections == 0
    finally:
        hidden.close()


def test_the_api_key_never_follows_a_redirect_to_another_host(
    gateway: Gateway, listener: Listener
) -> None:
    # Given an upstream that redirects the submit POST and then the status check to a
    # collector on another port
    model = unique_model("redirect")
    elsewhere = f"http://127.0.0.1:{listener.port}/collect"
    gateway.script(
        {
            "model_id": model,
            "submit": [{"code": 307, "headers": {"Location": elsewhere}, "body": ""}],
        }
    )
    status_model = unique_model("redirect-status")
    gateway.script(
        {
            "model_id": status_model,
            "status": [{"code": 302, "headers": {"Location": elsewhere}, "body": ""}] * 5,
        }
    )
    # When jobs are submitted for both
    first = gateway.wait(submit(gateway, model), timeout=30)
    second = gateway.wait(submit(gateway, status_model), timeout=30)
    # Then both jobs ended with a reason, and nothing reached the collector
    assert first["status"] == second["status"] == "FAILURE"
    assert first["error_code"] == "UPSTREAM_OUTCOME_UNKNOWN"
    assert second["error_code"] == "UPSTREAM_BAD_RESPONSE"
    assert listener.connections == 0
    assert E2E_UPSTREAM_KEY.encode() not in listener.received
