"""Reliability and security on the running local stack, over HTTP only: faults end as stated,
duplicates are not charged twice, a burst loses nothing, the upstream key leaks nowhere.

(Named to run after the other e2e modules: the secrets test at the end searches everything the
stack printed and answered during the whole session.)"""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3

from tests.e2e.conftest import E2E_UPSTREAM_KEY, Gateway

BURST = 60


def submitted(gateway: Gateway, body: dict[str, Any], **kwargs: Any) -> str:
    response = gateway.submit(body, headers={"Content-Type": "application/json"}, **kwargs)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def test_each_fault_ends_as_stated(gateway: Gateway) -> None:
    # Given one job per fault the fake upstream can play, submitted together
    started = time.monotonic()
    jobs = {
        model: submitted(gateway, {"model_id": model, "prompt": "a fox"})
        for model in ["fake-flaky", "fake-never", "fake-broken-image", "fake-failure"]
    }
    # When they have all ended (the stack's deadline is 20 s, its poll interval 1 s)
    views = {model: gateway.wait(job_id, timeout=45) for model, job_id in jobs.items()}
    # Then each ended as promised, with a code a caller can act on
    assert views["fake-flaky"]["status"] == "SUCCESS"
    assert len(views["fake-flaky"]["download_urls"]) == 1
    assert (views["fake-never"]["status"], views["fake-never"]["error_code"]) == (
        "FAILURE",
        "TIMED_OUT",
    )
    assert views["fake-never"]["timings"]["total_seconds"] <= 20 + 1 + 5
    broken = views["fake-broken-image"]
    assert (broken["status"], broken["error_code"]) == ("FAILURE", "DOWNLOAD_FAILED")
    assert "download_urls" not in broken
    assert views["fake-failure"]["error_code"] == "UPSTREAM_FAILURE"
    assert time.monotonic() - started < 45


def test_a_retried_request_with_the_same_idempotency_key_is_charged_once(
    gateway: Gateway,
) -> None:
    # (a model id of its own: jobs of other tests may reach the upstream meanwhile)
    model = f"once-{uuid.uuid4().hex[:8]}"
    key = {"Idempotency-Key": str(uuid.uuid4()), "Content-Type": "application/json"}
    body = {"model_id": model, "prompt": "a lighthouse", "seed": 3}
    first = gateway.submit(body, headers=key)
    again = gateway.submit(body, headers=key)
    changed = gateway.submit({**body, "seed": 4}, headers=key)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert changed.status_code == 422
    # The workflow sends the POST after the 202: count once the job has ended.
    assert gateway.wait(first.json()["id"])["status"] == "SUCCESS"
    assert gateway.upstream_stats()["submits_by_model"][model] == 1


def test_a_burst_of_concurrent_submits_loses_nothing_and_charges_each_once(
    gateway: Gateway,
) -> None:
    # Given 60 clients submitting at the same moment
    model = f"burst-{uuid.uuid4().hex[:8]}"
    bodies = [{"model_id": model, "prompt": f"burst {n}", "seed": n} for n in range(BURST)]
    with ThreadPoolExecutor(max_workers=BURST) as pool:
        # (locally the HTTP routes run one at a time, so the 60th answer can come after API
        # Gateway's 30 s; what this test checks is that nothing is lost or charged twice)
        answers = list(pool.map(lambda body: gateway.submit(body, timeout=90), bodies))
    # Then every one was accepted as its own job, and the upstream was called exactly 60 times
    assert [answer.status_code for answer in answers] == [202] * BURST
    job_ids = {answer.json()["id"] for answer in answers}
    assert len(job_ids) == BURST
    # And every job ends SUCCESS with its image
    with ThreadPoolExecutor(max_workers=8) as pool:
        views = list(pool.map(lambda job_id: gateway.wait(job_id, timeout=180), job_ids))
    assert [view["status"] for view in views] == ["SUCCESS"] * BURST
    assert all(len(view["download_urls"]) == 1 for view in views)
    # And the upstream was called exactly once per job
    assert gateway.upstream_stats()["submits_by_model"][model] == BURST


def test_the_upstream_key_appears_in_no_log_answer_row_or_execution_history(
    gateway: Gateway,
) -> None:
    # Given everything the session did (this module runs last), plus a request that the
    # upstream refuses with the key the gateway holds
    everything = [gateway.logs(), *gateway.answers]
    # When every row, object header and execution history in the stack is gathered too
    session = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    dynamodb = session.client("dynamodb", endpoint_url=gateway.moto_url)
    for table in dynamodb.list_tables()["TableNames"]:
        everything.append(json.dumps(dynamodb.scan(TableName=table)["Items"], default=str))
    sfn = session.client("stepfunctions", endpoint_url=gateway.moto_url)
    histories = 0
    for machine in sfn.list_state_machines()["stateMachines"]:
        executions = sfn.list_executions(stateMachineArn=machine["stateMachineArn"])
        for execution in executions["executions"]:
            arn = execution["executionArn"]
            everything.append(json.dumps(sfn.describe_execution(executionArn=arn), default=str))
            history = sfn.get_execution_history(executionArn=arn, maxResults=1000)
            everything.append(json.dumps(history, default=str))
            histories += 1
    # Then the key is nowhere, though there was plenty to search
    text = "\n".join(everything)
    assert histories >= BURST
    assert "[invoke]" in text
    assert E2E_UPSTREAM_KEY not in text
