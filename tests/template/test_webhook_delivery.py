"""The webhook consumer's limits hold together: every record of a batch is attempted, and
answered in the partial batch response, before the function's timeout.

The consumer attempts a batch's records at once (up to MAX_PARALLEL_ATTEMPTS) and waits one
attempt's time plus a grace; each attempt ends by its deadline. If the function could time out
instead, its whole batch would come back: webhooks already delivered sent again, the rest not
tried, and every message's receive count (its attempt number) spent. Files only.
"""

from __future__ import annotations

from typing import Any

import pytest

from imagegateway.adapters.webhooks import MAX_ATTEMPTS
from imagegateway.entrypoints.webhook_queue import MAX_PARALLEL_ATTEMPTS, REPORT_GRACE_SECONDS
from imagegateway.platform.settings import Settings
from imagegateway.platform.time_budget import SAFETY_MARGIN_SECONDS

pytestmark = pytest.mark.usefixtures("no_network")

# Left for what follows the attempts: one ChangeMessageVisibility per failed record (each an
# SQS call of well under a second), the partial batch response, the logs and metrics.
SETTLE_SECONDS = 10


def deliver_function(template: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = template["Resources"]["DeliverWebhookFunction"]["Properties"]
    return properties


def attempt_seconds(template: dict[str, Any]) -> float:
    """The attempt's time the deployed function has: the template's, else the default."""
    own = deliver_function(template).get("Environment", {}).get("Variables", {})
    shared = template["Globals"]["Function"]["Environment"]["Variables"]
    value = {**shared, **own}.get("WEBHOOK_TIMEOUT_SECONDS")
    default = Settings.model_fields["webhook_timeout_seconds"].default
    return float(value) if value is not None else float(default)


def test_every_record_of_a_batch_is_attempted_and_answered_within_the_timeout(
    template: dict[str, Any],
) -> None:
    # Given the delivery function, its queue's event source and the attempt's time
    function = deliver_function(template)
    timeout = int(function.get("Timeout", template["Globals"]["Function"]["Timeout"]))
    batch_size = int(function["Events"]["Deliveries"]["Properties"]["BatchSize"])
    attempt = attempt_seconds(template)
    # Then a batch's records all get a thread from the start (one round of attempts)
    assert batch_size <= MAX_PARALLEL_ATTEMPTS
    # And an invocation has time for a whole attempt at its start (none goes untried), for the
    # batch to wait out its attempts, and to answer, before its timeout
    assert timeout - SAFETY_MARGIN_SECONDS >= attempt + REPORT_GRACE_SECONDS + SETTLE_SECONDS
    # And failures are reported per record
    assert function["Events"]["Deliveries"]["Properties"]["FunctionResponseTypes"] == [
        "ReportBatchItemFailures"
    ]


def test_a_message_never_comes_back_while_its_invocation_runs(template: dict[str, Any]) -> None:
    # Given the webhook queue and the delivery function
    queue = template["Resources"]["WebhookQueue"]["Properties"]
    timeout = int(deliver_function(template)["Timeout"])
    # Then a received message stays hidden longer than an invocation may run (else a second
    # invocation could deliver it again meanwhile)
    assert int(queue["VisibilityTimeout"]) >= timeout
    # And every attempt of the schedule is a receive before the dead-letter queue
    assert int(queue["RedrivePolicy"]["maxReceiveCount"]) == MAX_ATTEMPTS
