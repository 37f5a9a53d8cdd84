"""WorkflowType=EXPRESS: the same statemachine/ file, created as an Express machine in moto and
run by its ASL interpreter, its tasks the real handlers, against the fake upstream over HTTP;
its steps run at least once (every task run twice changes nothing: #21, finding 3).

An Express execution cannot be described or stopped (moto refuses, as AWS does), so these tests
watch what callers see: the job row and the completion events on the bus."""

from __future__ import annotations

import contextlib
import copy
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from imagegateway.domain.events import DetailType
from local.aws.lambda_runtime import run_handler
from local.aws.moto_patches import handlers_in_process
from local.aws.resources import LocalStack
from local.fake_upstream import FakeUpstream
from tests.support.events import status_event
from tests.support.stack import (
    bucket_keys,
    invoke,
    job_row,
    moto_stack,
    submit_job,
    watch_completions,
)

REGION = "us-east-1"


@pytest.fixture
def express(upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    # The shortest hand-over the settings allow, so a 12 s job needs two new executions.
    environment = {"EXPRESS_HAND_OVER_SECONDS": "5"}
    with moto_stack(
        upstream,
        monkeypatch,
        execute_state_machine=True,
        parameters={"WorkflowType": "EXPRESS"},
        environment=environment,
    ) as built:
        yield built


@pytest.fixture
def invocations(express: LocalStack) -> Iterator[list[dict[str, Any]]]:
    with handlers_in_process(express) as calls:
        yield calls


@pytest.fixture
def completions(express: LocalStack) -> Callable[[], list[dict[str, Any]]]:
    """Every completion event put on the gateway's bus so far (a queue subscribed to them)."""
    return watch_completions(express, "express-completions")


def wait_until_ended(stack: LocalStack, job_id: str, timeout: float = 40) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (row := job_row(stack, job_id)) is None or row["status"] == "PENDING":
        assert time.monotonic() < deadline, f"job {job_id} still PENDING after {timeout} s"
        time.sleep(0.2)
    return row


def events_of(job_id: str, events: list[dict[str, Any]]) -> list[str]:
    return [event["detail-type"] for event in events if event["detail"].get("job_id") == job_id]


def eventually(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def calls_to(invocations: list[dict[str, Any]], logical_id: str) -> int:
    return sum(1 for call in invocations if call["function"].split("-")[2] == logical_id)


def test_an_express_job_is_checked_every_second_and_ends_with_one_event(
    express: LocalStack,
    upstream: FakeUpstream,
    invocations: list[dict[str, Any]],
    completions: Callable[[], list[dict[str, Any]]],
) -> None:
    # Given an Express machine and a job the upstream finishes after a few checks
    # When it is submitted
    job_id = submit_job(express, {"model_id": "sd1.5", "prompt": "a fox", "samples": 2})
    # Then it ends SUCCESS with its images, each check one invocation, the state machine waiting
    # between them (no in-function polling: Express bills duration, not transitions)
    row = wait_until_ended(express, job_id)
    assert row["status"] == "SUCCESS"
    assert len(bucket_keys(express, f"jobs/{job_id}/")) == 2
    assert upstream.stats()["submits"] == 1
    assert calls_to(invocations, "CheckUpstreamFunction") == upstream.stats()["status_checks"]
    # And its one completion event is on the bus
    eventually(lambda: events_of(job_id, completions()) == [DetailType.SUCCEEDED.value])


def test_a_long_job_goes_on_in_new_executions_and_is_sent_once(
    express: LocalStack,
    upstream: FakeUpstream,
    invocations: list[dict[str, Any]],
    completions: Callable[[], list[dict[str, Any]]],
) -> None:
    # Given a job the upstream finishes 12 s after its submit, hand-overs every 5 s
    upstream.script({"model_id": "slow-model", "completes_after_seconds": 12})
    # When it is submitted
    job_id = submit_job(express, {"model_id": "slow-model", "prompt": "a fox"})
    row = wait_until_ended(express, job_id)
    # Then it was followed by more than one execution (each begins with SubmitUpstream), sent
    # upstream once, and stored once
    assert row["status"] == "SUCCESS"
    assert calls_to(invocations, "SubmitUpstreamFunction") >= 3
    assert upstream.stats()["submits"] == 1
    assert bucket_keys(express, f"jobs/{job_id}/") == [f"jobs/{job_id}/0.png"]
    eventually(lambda: events_of(job_id, completions()) == [DetailType.SUCCEEDED.value])
    # And no task failed on the way
    assert not [call for call in invocations if call.get("error")]


def cancel_event(job_id: str) -> dict[str, Any]:
    event = status_event(job_id)
    path = f"/v1/jobs/{job_id}/cancel"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = "POST"
    event["routeKey"] = "POST /v1/jobs/{job_id}/cancel"
    event["pathParameters"] = {"job_id": job_id}
    return event


def test_a_cancelled_express_job_stops_itself_with_one_event(
    express: LocalStack,
    upstream: FakeUpstream,
    invocations: list[dict[str, Any]],
    completions: Callable[[], list[dict[str, Any]]],
) -> None:
    # Given an Express job the upstream never finishes, followed for a while
    job_id = submit_job(express, {"model_id": "fake-never", "prompt": "a fox"})
    eventually(lambda: upstream.stats()["status_checks"] >= 2)
    # When its caller cancels it (the execution cannot be stopped)
    answer = invoke(express, "job_status", cancel_event(job_id))
    assert answer["statusCode"] == 200, answer["body"]
    # Then its execution stops at its next check, quietly: no more checks, no second event
    checks_then = upstream.stats()["status_checks"]
    time.sleep(3)
    assert upstream.stats()["status_checks"] <= checks_then + 1
    row = job_row(express, job_id)
    assert row is not None
    assert (row["status"], row["error_code"]) == ("FAILURE", "CANCELLED")
    eventually(lambda: events_of(job_id, completions()) == [DetailType.FAILED.value])
    time.sleep(1)
    assert events_of(job_id, completions()) == [DetailType.FAILED.value]


class DuplicatedSteps:
    """Express runs each step at least once: every workflow task here runs twice, and the state
    machine goes on with the answer of the second run. A submit's twin runs first, in the
    background: the second (the state machine's) starts once the twin holds the claim, so it may
    find the twin's POST in flight (moto's conditional writes are not atomic across threads,
    DynamoDB's are, so it waits for the claim rather than racing it). A check's, a store's or a
    failure's twin runs just before it. Whatever the twins do, the job's outcome must not
    change."""

    TASKS = (
        "SubmitUpstreamFunction",
        "CheckUpstreamFunction",
        "StoreImagesFunction",
        "RecordFailureFunction",
    )

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.threads: list[threading.Thread] = []
        self.duplicates: dict[str, int] = {}

    def __call__(self, function_name: str, event: Any) -> None:
        task = next((task for task in self.TASKS if f"-{task}-" in function_name), None)
        if task is None:
            return
        self.duplicates[task] = self.duplicates.get(task, 0) + 1
        twin = copy.deepcopy(event)
        if task != "SubmitUpstreamFunction":
            self._run(function_name, twin)
            return
        thread = threading.Thread(target=self._run, args=(function_name, twin))
        thread.start()
        self.threads.append(thread)
        deadline = time.monotonic() + 10
        while thread.is_alive() and time.monotonic() < deadline:
            row = job_row(self.stack, str(event.get("job_id")))
            if row is None or "submit_started_at" in row or row.get("status") != "PENDING":
                return
            time.sleep(0.01)

    def _run(self, function_name: str, event: Any) -> None:
        with contextlib.suppress(Exception):  # a twin that finds the job ended raises
            run_handler(self.stack, function_name, event)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=30)


@pytest.mark.parametrize(
    ("model", "ending", "detail_type"),
    [
        ("sd1.5", ("SUCCESS", None), DetailType.SUCCEEDED),
        ("slow-post", ("SUCCESS", None), DetailType.SUCCEEDED),
        ("fake-failure", ("FAILURE", "UPSTREAM_FAILURE"), DetailType.FAILED),
    ],
)
def test_every_step_run_twice_changes_nothing(
    express: LocalStack,
    upstream: FakeUpstream,
    completions: Callable[[], list[dict[str, Any]]],
    model: str,
    ending: tuple[str, str | None],
    detail_type: DetailType,
) -> None:
    # Given an Express machine whose every task runs twice (with "slow-post", the state
    # machine's submit runs while its twin's POST is in flight for 2 s)
    upstream.script(
        {
            "model_id": "slow-post",
            "submit": [
                {
                    "code": 200,
                    "accept": True,
                    "delay_seconds": 2,
                    "json": {"status": "PENDING", "id": "{{id}}"},
                }
            ],
            "completes_after_seconds": 1,
        }
    )
    duplicated = DuplicatedSteps(express)
    with handlers_in_process(express, before_invoke=duplicated):
        # When a job runs to its end
        job_id = submit_job(express, {"model_id": model, "prompt": "a fox", "samples": 2})
        row = wait_until_ended(express, job_id)
        duplicated.join()
    # Then every step was duplicated, and the job ended as it would have: one POST, its images
    # stored once (or none), one completion event, nothing left untold
    assert (row["status"], row.get("error_code")) == ending
    assert duplicated.duplicates["SubmitUpstreamFunction"] >= 1
    assert duplicated.duplicates["CheckUpstreamFunction"] >= 1
    assert upstream.stats()["submits"] == 1
    assert len(bucket_keys(express, f"jobs/{job_id}/")) == (2 if ending[0] == "SUCCESS" else 0)
    eventually(lambda: events_of(job_id, completions()) == [detail_type.value])
    time.sleep(1)
    assert events_of(job_id, completions()) == [detail_type.value]
    final = job_row(express, job_id)
    assert final is not None
    assert "untold" not in final
