"""Tracing on AWS, end to end but for AWS: a traced invocation, in a fresh Lambda-like process
(LAMBDA_TASK_ROOT set, a sampled _X_AMZN_TRACE_ID), sends X-Ray its handler's subsegment and one
per botocore and requests call to the daemon's UDP address (a local socket here), though
`LazyTracer` made the tracer at the first call and both libraries were imported after it."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.unit.entrypoints.test_cold_imports import LAYER, lambda_environment, run_child

pytestmark = pytest.mark.network


TRACED_CALLS = r"""
import sys
sys.path[:0] = [sys.argv[1]]
from imagegateway.adapters.aws_clients import sqs_client
from imagegateway.platform.observability import tracer

class Context:
    function_name = "cold-imports"
    aws_request_id = "request-1"

@tracer.capture_lambda_handler
def handler(event, context):
    import requests  # both imported after the tracer was made, as a function's first use does
    for call in (lambda: requests.get("http://127.0.0.1:9/", timeout=1), sqs_client().list_queues):
        try:
            call()
        except Exception:
            pass  # nothing listens there: only the subsegments matter
    return {"ok": True}

print(handler({}, Context()))
"""


def test_a_traced_invocation_sends_its_handler_aws_and_http_subsegments(tmp_path: Path) -> None:
    # Given a fake X-Ray daemon, and an invocation that X-Ray sampled
    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    daemon.bind(("127.0.0.1", 0))
    daemon.settimeout(10)
    environment = lambda_environment(
        tmp_path,
        _X_AMZN_TRACE_ID="Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        AWS_XRAY_DAEMON_ADDRESS=f"127.0.0.1:{daemon.getsockname()[1]}",
        AWS_ENDPOINT_URL="http://127.0.0.1:9",
    )
    try:
        # When the handler runs (it calls requests and botocore, both refused at once)
        assert run_child(TRACED_CALLS, str(LAYER), env=environment, cwd=tmp_path) == "{'ok': True}"
        # Then the daemon got the handler's subsegment and one per call
        names: list[str] = []
        while "## handler" not in names:
            datagram, _ = daemon.recvfrom(65535)
            names.append(json.loads(datagram.decode().split("\n", 1)[1])["name"])
    finally:
        daemon.close()
    assert sorted(names) == ["## handler", "127.0.0.1", "sqs"]
