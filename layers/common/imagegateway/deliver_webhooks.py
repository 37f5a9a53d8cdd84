"""Use case: the webhook queue's consumer. Each received message is one delivery attempt (its
receive count is the attempt's number).

A failed attempt hides its message for the schedule's next delay and is reported as a batch
item failure, so the queue does the waiting; after the last attempt the queue's redrive policy
(maxReceiveCount = webhooks.MAX_ATTEMPTS) moves it to the dead-letter queue. A message that can
never be delivered (not a WebhookMessage, a refused URL) is logged, counted and dropped.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError
from pydantic import ValidationError

from imagegateway.aws import error_code, sqs_client
from imagegateway.observability import logger, metrics
from imagegateway.settings import get_settings
from imagegateway.webhooks import (
    WebhookDeliveryError,
    WebhookMessage,
    WebhookRejectedError,
    WebhookSender,
    next_delay_seconds,
)

# SQS's longest visibility timeout (12 h); the schedule's longest delay (10 h) is below it.
MAX_VISIBILITY_SECONDS = 43200

# Every record that failed is answered in batchItemFailures, even when all did: a failed
# attempt is an expected outcome, not an error of the function.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def deliver_webhooks(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The SQS batch in, the partial batch response out."""
    sender = WebhookSender(get_settings())
    try:
        return deliver_batch(event, context, sender)
    finally:
        sender.close()


def deliver_batch(
    event: dict[str, Any], context: LambdaContext, sender: WebhookSender
) -> dict[str, Any]:
    def handle(record: SQSRecord) -> None:
        deliver_record(record, sender)

    response = process_partial_response(
        event=event, record_handler=handle, processor=processor, context=context
    )
    return {"batchItemFailures": list(response["batchItemFailures"])}


def deliver_record(record: SQSRecord, sender: WebhookSender) -> None:
    """One attempt at one message; raises (so the record is retried) only when it may succeed
    later."""
    message = _message_of(record)
    if message is None:
        return
    logger.append_keys(job_id=message.job_id, webhook_id=message.webhook_id)
    try:
        _attempt(record, message, sender)
    finally:
        logger.remove_keys(["job_id", "webhook_id"])


def _message_of(record: SQSRecord) -> WebhookMessage | None:
    try:
        return WebhookMessage.model_validate_json(record.body)
    except ValidationError as exc:
        logger.error(
            "webhook message is malformed; dropped",
            extra={"message_id": record.message_id, "errors": exc.errors(include_input=False)},
        )
        metrics.add_metric(name="WebhooksRejected", unit="Count", value=1)
        return None


def _attempt(record: SQSRecord, message: WebhookMessage, sender: WebhookSender) -> None:
    attempt = attempt_number(record)
    try:
        sender.deliver(message)
    except WebhookRejectedError as exc:
        logger.error("webhook URL refused; dropped", extra={"reason": exc.message})
        metrics.add_metric(name="WebhooksRejected", unit="Count", value=1)
        return
    except WebhookDeliveryError as exc:
        metrics.add_metric(name="WebhookAttemptsFailed", unit="Count", value=1)
        _retry_later(record, attempt, exc)
        raise
    metrics.add_metric(name="WebhooksDelivered", unit="Count", value=1)
    logger.info("webhook delivered", extra={"attempt": attempt})


def attempt_number(record: SQSRecord) -> int:
    """The record's receive count: 1 for the first attempt."""
    try:
        return max(1, int(record.attributes.approximate_receive_count))
    except (KeyError, TypeError, ValueError):
        return 1


def _retry_later(record: SQSRecord, attempt: int, error: WebhookDeliveryError) -> None:
    delay = next_delay_seconds(attempt)
    extra = {"attempt": attempt, "error": error.message}
    if delay is None:
        # Left to the queue's own visibility timeout: the next receive dead-letters it.
        logger.error("webhook not delivered after its last attempt", extra=extra)
        return
    logger.warning("webhook attempt failed; tried again later", extra={**extra, "delay": delay})
    hide(record, min(delay, MAX_VISIBILITY_SECONDS))


def hide(record: SQSRecord, seconds: int) -> None:
    """Make the record's message visible again only in `seconds`. If SQS refuses, the queue's
    own visibility timeout applies instead: the attempt is still retried, only sooner."""
    try:
        sqs_client().change_message_visibility(
            QueueUrl=queue_url_of(record.event_source_arn),
            ReceiptHandle=record.receipt_handle,
            VisibilityTimeout=seconds,
        )
    except ClientError as exc:
        logger.warning("webhook retry delay not set", extra={"error": error_code(exc)})
    except ValueError as exc:  # not an SQS queue ARN
        logger.warning("webhook retry delay not set", extra={"error": str(exc)})


@lru_cache(maxsize=8)
def queue_url_of(queue_arn: str) -> str:
    """arn:aws:sqs:<region>:<account>:<name> to its URL (one GetQueueUrl per queue and process)."""
    parts = queue_arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        raise ValueError(f"not an SQS queue ARN: {queue_arn!r}")
    account, name = parts[4], parts[5]
    answer = sqs_client().get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)
    return answer["QueueUrl"]
