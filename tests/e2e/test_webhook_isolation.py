"""A webhook receiver that dribbles its answer, next to a good one, over the local stack: the
good receiver gets its webhook once and promptly; the dribbler's attempt is cut at its deadline
(the template's 10 s) and tried again on the schedule, not held until the function times out."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.e2e.conftest import Gateway
from tests.support.webhook_receivers import SlowReceiver

pytestmark = pytest.mark.network

# The deployed attempt's time (the stack keeps the template's), and generous room around it.
ATTEMPT_SECONDS = 10
WELL_WITHIN = 2 * ATTEMPT_SECONDS


class GoodReceiver(BaseHTTPRequestHandler):
    received: list[str]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.received.append(self.headers["webhook-id"])
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def good_receiver() -> Iterator[tuple[str, list[str]]]:
    received: list[str] = []
    handler = type("Good", (GoodReceiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/good", received
    server.shutdown()
    server.server_close()


@pytest.fixture
def dribbler() -> Iterator[SlowReceiver]:
    receiver = SlowReceiver(mode="dribble", byte_interval=0.2, give_up_after=90)
    yield receiver
    receiver.close()


def submit_with_webhook(gateway: Gateway, url: str) -> str:
    response = gateway.session.post(
        gateway.url + "/sd/text2image/v1",
        params={"webhook_url": url},
        json={"model_id": "fake-instant", "prompt": "p"},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def wait_until(condition: Any, seconds: float, what: str) -> None:
    ends = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < ends, f"{what} after {seconds} s"
        time.sleep(0.2)


def test_a_dribbling_receiver_delays_no_other_webhook_and_is_cut_at_its_deadline(
    gateway: Gateway, good_receiver: tuple[str, list[str]], dribbler: SlowReceiver
) -> None:
    # Given a job whose webhook goes to a receiver that answers a byte every 0.2 s, forever,
    # and then another caller's job whose webhook goes to a receiver that answers at once
    good_url, received = good_receiver
    submit_with_webhook(gateway, dribbler.url)
    wait_until(lambda: dribbler.visits, 60, "no attempt at the dribbler")
    submitted = time.monotonic()
    good_job = submit_with_webhook(gateway, good_url)

    # When the jobs end, Then the good receiver gets its webhook promptly: while the dribbler
    # holds its attempt, or just after, never when the dribbler gives up (90 s)
    wait_until(lambda: received, 60, "no webhook at the good receiver")
    assert time.monotonic() - submitted < WELL_WITHIN
    # And the dribbler's attempt was cut at about its deadline
    first = dribbler.visits[0]
    wait_until(lambda: first.left_at is not None, WELL_WITHIN, "the dribbler still held")
    assert first.held_seconds is not None
    assert first.held_seconds < WELL_WITHIN
    # And its webhook is tried again on the schedule (5 s after the failed attempt)
    wait_until(lambda: len(dribbler.visits) >= 2, 60, "no second attempt at the dribbler")
    # And the good receiver got its webhook exactly once
    time.sleep(2)
    assert received == [f"msg_{good_job}"]
