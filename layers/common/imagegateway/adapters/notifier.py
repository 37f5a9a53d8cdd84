"""The adapter that tells callers a job ended: the completion event on the gateway's bus, the
answer to a Step Functions task waiting on the job, and the webhook delivery (queued, retried by
its own consumer).

Within the workflow the event is put on the bus by the state machine itself (PublishCompletion);
`publish` is for the paths outside it (a request refused at intake, a job the reconciler ends).
"""

from __future__ import annotations

import json
from datetime import datetime

from botocore.exceptions import ClientError

from imagegateway.adapters.aws_clients import error_code, events_client, sfn_client
from imagegateway.adapters.webhooks import WebhookQueue, webhook_message
from imagegateway.domain.base import JobStatus
from imagegateway.domain.errors import ConfigurationError, GatewayError
from imagegateway.domain.events import EVENT_SOURCE, Completion
from imagegateway.platform.observability import logger, metrics
from imagegateway.platform.settings import Settings

# A task token that can no longer be answered (its execution ended, timed out, or the token was
# answered already, e.g. by a retried task): nothing is waiting, so nothing is lost.
SETTLED_TOKEN_ERRORS = frozenset({"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"})
MAX_CAUSE_CHARS = 32768  # SendTaskFailure's bound


class CompletionNotPublishedError(GatewayError):
    """The bus refused the completion event (retried by the caller of `publish`)."""


def detail_json(completion: Completion) -> str:
    return json.dumps(
        completion.detail.model_dump(mode="json", exclude_none=True), separators=(",", ":")
    )


class Notifier:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def publish(self, completion: Completion) -> None:
        if not self._settings.event_bus_name:
            raise ConfigurationError("EVENT_BUS_NAME is not set")
        answer = events_client().put_events(
            Entries=[
                {
                    "EventBusName": self._settings.event_bus_name,
                    "Source": EVENT_SOURCE,
                    "DetailType": completion.detail_type.value,
                    "Detail": detail_json(completion),
                }
            ]
        )
        if answer.get("FailedEntryCount"):
            raise CompletionNotPublishedError(f"the bus refused the event: {answer['Entries']}")
        metrics.add_metric(name="CompletionEventsPublished", unit="Count", value=1)

    def answer_task(self, task_token: str, completion: Completion) -> None:
        detail = completion.detail
        try:
            if detail.status is JobStatus.SUCCESS:
                sfn_client().send_task_success(taskToken=task_token, output=detail_json(completion))
            else:
                sfn_client().send_task_failure(
                    taskToken=task_token,
                    error=detail.error_code or "FAILURE",
                    cause=(detail.error or "the job failed")[:MAX_CAUSE_CHARS],
                )
        except ClientError as exc:
            if error_code(exc) not in SETTLED_TOKEN_ERRORS:
                raise
            logger.warning("the waiting task was already settled", extra={"error": error_code(exc)})
            return
        metrics.add_metric(name="TaskTokensAnswered", unit="Count", value=1)

    def queue_webhook(
        self, url: str, completion: Completion, *, now: datetime, owner: str, variant: str = ""
    ) -> None:
        message = webhook_message(url, completion, now=now, owner=owner, variant=variant)
        WebhookQueue(self._settings).enqueue(message)
        metrics.add_metric(name="WebhooksQueued", unit="Count", value=1)
