"""End-to-end tests: `python -m local.stack` as a subprocess on free ports, driven over HTTP only,
the way a client of the gateway (or of the upstream) would."""

from __future__ import annotations

import json
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from local.aws.aws_calls import CallSink
from local.stack import StackProcess
from tests.support.event_schema import assert_valid_completion

_SESSION_DIRECTORY = Path(tempfile.mkdtemp(prefix="e2e-stack-"))
# Random per run: the secrets test searches everything the stack printed or answered for it.
E2E_UPSTREAM_KEY = f"e2e-{secrets.token_hex(16)}"
STACK_ENVIRONMENT = {
    "FAKE_UPSTREAM_API_KEY": E2E_UPSTREAM_KEY,
    "FAKE_PENDING_POLLS": "2",
    # Short waits keep the run fast; the logic (backoff, deadline) is the deployed one.
    "JOB_DEADLINE_SECONDS": "20",
    "POLL_INTERVAL_SECONDS": "1",
    "POLL_MAX_INTERVAL_SECONDS": "1",
    "LOG_LEVEL": "WARNING",
    # The reconciler's local schedule, quick so a test can watch it end a stuck job.
    "RECONCILE_INTERVAL_SECONDS": "2",
    # ...which starts a job no workflow run reached 3 s after its row (deployed: 45 s), and
    # tells an end left untold 1 s after it (deployed: 30 s).
    "START_GRACE_SECONDS": "3",
    "TELL_GRACE_SECONDS": "1",
    # This session's outputs, not the developer's out/stack-outputs.json.
    "STACK_OUTPUTS_FILE": str(_SESSION_DIRECTORY / "stack-outputs.json"),
    # Every AWS call the stack's functions make, checked against their roles at the end.
    "LOCAL_AWS_CALLS_FILE": str(_SESSION_DIRECTORY / "aws-calls.jsonl"),
    # Never the real upstream, whatever the developer's shell holds.
    "IMAGEPIPELINE_API_KEY": "",
    "UPSTREAM_BASE_URL": "",
}
SUBMIT_PATH = "/sd/text2image/v1"
STATUS_PATH = "/sd/text2image/v1/status/{id}"


@dataclass
class Gateway:
    """An HTTP client of the running stack, and of its AWS resources (the moto server) the way a
    pipeline would use them: through the names in out/stack-outputs.json."""

    process: StackProcess
    url: str
    moto_url: str
    upstream_url: str
    session: requests.Session
    answers: list[str]
    # Completion events read off the CompletionQueue so far (every test's: match by reference
    # or job id).
    completions: list[dict[str, Any]] = field(default_factory=list)
    # A stack of a test's own (other settings) writes its outputs elsewhere.
    outputs_file: str = STACK_ENVIRONMENT["STACK_OUTPUTS_FILE"]

    def outputs(self) -> dict[str, str]:
        outputs: dict[str, str] = json.loads(Path(self.outputs_file).read_text(encoding="utf-8"))
        return outputs

    def aws(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.moto_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def completion(
        self, matches: Callable[[dict[str, Any]], bool], *, timeout: float = 60
    ) -> dict[str, Any]:
        """The first completion event (as the bus delivered it) that `matches`."""
        sqs, queue = self.aws("sqs"), self.outputs()["CompletionQueueUrl"]
        deadline = time.monotonic() + timeout
        while True:
            found = [event for event in self.completions if matches(event)]
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"no such completion event after {timeout} s")
            answer = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            for message in answer.get("Messages", []):
                event = json.loads(message["Body"])
                # Every event the bus carries, whichever test caused it, keeps the contract.
                assert_valid_completion(event)
                self.completions.append(event)
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])

    def submit(
        self,
        body: Any = None,
        *,
        raw: bytes | None = None,
        caller: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> requests.Response:
        """POST a body: a JSON value, or `raw` bytes as they are; no Content-Type unless given."""
        data = raw if raw is not None else json.dumps(body).encode()
        sent = dict(headers or {})
        if caller is not None:
            sent["X-Local-Caller"] = caller
        return self.session.post(self.url + SUBMIT_PATH, data=data, headers=sent, timeout=timeout)

    def status(self, job_id: str, *, caller: str | None = None) -> requests.Response:
        headers = {"X-Local-Caller": caller} if caller is not None else {}
        return self.session.get(
            self.url + STATUS_PATH.format(id=job_id), headers=headers, timeout=30
        )

    def wait(self, job_id: str, *, timeout: float = 30, caller: str | None = None) -> Any:
        """The job's view once it is no longer PENDING."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.status(job_id, caller=caller)
            assert response.status_code == 200, response.text
            view = response.json()
            if view["status"] != "PENDING":
                return view
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} still PENDING after {timeout} s")
            time.sleep(0.25)

    def script(self, spec: dict[str, Any]) -> None:
        """Stage the fake upstream's answers for one model id (POST /__fake__/script)."""
        response = self.session.post(self.upstream_url + "/__fake__/script", json=spec, timeout=10)
        assert response.status_code == 200, response.text

    def upstream_stats(self) -> Any:
        return self.session.get(self.upstream_url + "/__fake__/stats", timeout=10).json()

    def logs(self) -> str:
        return self.process.output()


@pytest.fixture(scope="session")
def gateway(aws_calls: list[CallSink]) -> Iterator[Gateway]:
    process = StackProcess(environment=STACK_ENVIRONMENT)
    urls = process.start(timeout=90)
    answers: list[str] = []
    with requests.Session() as session:
        # Every answer the stack gives a test, kept for the secrets test to search.
        session.hooks["response"].append(
            lambda response, *args, **kwargs: answers.append(
                f"{response.status_code} {response.headers} {response.text}"
            )
        )
        yield Gateway(process, urls.gateway, urls.moto, urls.upstream, session, answers)
    code = process.stop()
    # The stack's functions' calls join this session's, proven at its end (tests/conftest.py).
    aws_calls.append(CallSink.read(Path(STACK_ENVIRONMENT["LOCAL_AWS_CALLS_FILE"])))
    assert code == 0, f"the stack exited with {code}:\n{process.output(last=40)}"
