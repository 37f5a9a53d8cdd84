"""Shared by every test: a safe AWS environment, sample events, fresh caches per test, and the
proof that every AWS call a function made is granted by its role (tests/support/iam_proof.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

import tests.support.environment  # noqa: F401  (first: sets the safe AWS environment)

# Imported after the environment is set: Powertools reads it when these modules load.
from local.aws.aws_calls import CallSink, record_aws_calls
from local.fake_upstream import FakeUpstream
from tests.support.iam_proof import prove, summary_lines
from tests.support.stack import UPSTREAM_KEY

# The session's proof reports, for the summary (xdist: each worker's comes back to the
# controller through workeroutput).
IAM_PROOF = pytest.StashKey[list[dict[str, Any]]]()


@pytest.fixture(scope="session", autouse=True)
def aws_calls(request: pytest.FixtureRequest) -> Iterator[list[CallSink]]:
    """Every AWS call a function makes in this session, recorded; at its end each must be
    allowed by that function's role in the translated template. Other processes' calls (the
    e2e stack's) are added to the list by their fixtures."""
    sinks = [CallSink()]
    with record_aws_calls(sinks[0]):
        yield sinks
    proof = prove(sinks)
    config = request.config
    if hasattr(config, "workeroutput"):
        config.workeroutput["iam_proof"] = json.dumps(proof.report())
    else:
        config.stash.setdefault(IAM_PROOF, []).append(proof.report())
    if proof.violations:
        pytest.fail(
            "AWS calls their function's role does not grant (template.yaml):\n  "
            + "\n  ".join(proof.violations),
            pytrace=False,
        )


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist: a worker's distinct calls, kept for the controller's summary."""
    output = getattr(node, "workeroutput", {}).get("iam_proof")
    if output:
        node.config.stash.setdefault(IAM_PROOF, []).append(json.loads(output))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    lines = summary_lines(config.stash.get(IAM_PROOF, []), verbose=config.get_verbosity() > 0)
    if lines:
        terminalreporter.section("AWS calls of each function, checked against its role")
        for line in lines:
            terminalreporter.line(line)


@pytest.fixture(autouse=True)
def fresh_caches() -> Iterator[None]:
    from tests.support.caches import clear_all

    clear_all()
    yield
    clear_all()


@pytest.fixture(scope="session")
def fake_upstream_server() -> Iterator[FakeUpstream]:
    """One fake upstream for the session, on a free port (integration and workflow tests)."""
    with FakeUpstream(api_key=UPSTREAM_KEY, pending_polls=2) as server:
        yield server


@pytest.fixture
def upstream(fake_upstream_server: FakeUpstream) -> FakeUpstream:
    """The fake upstream, with its jobs, counters and key reset for this test."""
    fake_upstream_server.reset()
    fake_upstream_server.api_key = UPSTREAM_KEY
    fake_upstream_server.pending_polls = 2
    return fake_upstream_server
