"""Every ending told at least once, and no job left unstarted (issue #21, findings 4 and 5), on the
real state machine: a bus outage staged in moto while a job ends, then the reconciler's run once
the bus is back; a job whose submit died between its row and StartExecution, started by the
reconciler's next run with one upstream POST in all."""

from __future__ import annotations

import time
from typing import Any

import pytest
from moto.core.exceptions import JsonRESTError
from moto.events.models import EventsBackend

from imagegateway.adapters.workflow import Workflow
from local.aws.resources import LocalStack
from local.fake_upstream import FakeUpstream
from tests.support.caches import clear_all
from tests.support.events import http_event_with_body, load_event
from tests.support.stack import (
    invoke,
    job_row,
    response_body,
    submit_job,
    wait_for_execution,
    watch_completions,
)


class BusUnavailable(JsonRESTError):
    code = 500  # a server error: botocore retries it, then gives up


def bus_down(*args: Any, **kwargs: Any) -> Any:
    raise BusUnavailable("InternalException", "the bus is unavailable (staged outage)")


def reconcile(stack: LocalStack) -> dict[str, Any]:
    report: dict[str, Any] = invoke(stack, "reconciler", load_event("reconciler"))
    return report


@pytest.fixture
def no_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reconciler acts at once (deployed: 30 s for tellings, 45 s for starts)."""
    monkeypatch.setenv("TELL_GRACE_SECONDS", "0")
    monkeypatch.setenv("START_GRACE_SECONDS", "1")
    clear_all()


def test_a_completion_the_bus_refused_is_published_once_it_is_back(
    stack: LocalStack,
    upstream: FakeUpstream,
    invocations: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    no_grace: None,
) -> None:
    # Given a consumer of completion events, and the bus refusing every event
    completions = watch_completions(stack, "told-at-least-once")
    with monkeypatch.context() as outage:
        outage.setattr(EventsBackend, "put_events", bus_down)
        # When a job runs to SUCCESS during the outage
        job_id = submit_job(stack, {"model_id": "sd1.5", "prompt": "a fox"})
        execution = wait_for_execution(job_id, stack)
        # Then the job ended (the workflow did its work), its event is not out, and its row
        # keeps it among the untold
        assert execution["status"] == "SUCCEEDED"
        row = job_row(stack, job_id)
        assert row is not None
        assert (row["status"], row.get("untold")) == ("SUCCESS", "1")
        assert "event" not in row.get("told", set())
        # And a reconciler run during the outage cannot tell it either
        reconcile(stack)
    assert completions() == []
    # When the bus is back and the reconciler runs
    report = reconcile(stack)
    # Then the completion is published, once, and the job leaves the untold
    assert report["told"] == [job_id]
    published = completions()
    assert [(e["detail"]["job_id"], e["detail"]["status"]) for e in published] == [
        (job_id, "SUCCESS")
    ]
    row = job_row(stack, job_id)
    assert row is not None
    assert "untold" not in row
    assert "event" in row["told"]
    # And a later run tells nothing again
    assert reconcile(stack)["told"] == []
    assert len(completions()) == 1


def test_a_job_whose_submit_died_before_its_workflow_started_is_started_by_the_next_run(
    stack: LocalStack,
    upstream: FakeUpstream,
    invocations: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    no_grace: None,
) -> None:
    # Given a submit that wrote the job's row, then died before StartExecution
    with monkeypatch.context() as died:
        died.setattr(Workflow, "start", lambda self, ticket, name=None: True)
        response = invoke(
            stack, "submit", http_event_with_body({"model_id": "sd1.5", "prompt": "a fox"})
        )
    assert response["statusCode"] == 202
    job_id: str = response_body(response)["id"]
    # When the reconciler runs past the start grace (1 s here; 45 s deployed, every minute)
    time.sleep(1.1)
    report = reconcile(stack)
    # Then it started the job's workflow, which ran it to SUCCESS with one upstream POST
    assert report["started"] == [job_id]
    execution = wait_for_execution(job_id, stack)
    assert execution["status"] == "SUCCEEDED"
    row = job_row(stack, job_id)
    assert row is not None
    assert row["status"] == "SUCCESS"
    assert upstream.stats()["submits"] == 1
    # And later runs do not start it again
    assert reconcile(stack)["started"] == []
