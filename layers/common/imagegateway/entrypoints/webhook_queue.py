"""Entry point, the webhook queue's consumer. Each received message is one delivery attempt (its
receive count is the attempt's number).

A failed attempt hides its message for the schedule's next delay and is reported as a batch
item failure, so the queue does the waiting; after the last attempt the queue's redrive policy
(maxReceiveCount = webhooks.MAX_ATTEMPTS) moves it to the dead-letter queue. A message that can
never be delivered (not a WebhookMessage, a refused URL) is logged, counted and dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from imagegateway.adapters.webhooks import (
    WebhookDeliveryError,
    WebhookMessage,
    WebhookRejectedError,
    WebhookSender,
    next_delay_seconds,
)
from imagegateway.domain.errors import RetryLater
from imagegateway.entrypoints.queue_batch import process_batch, receive_count
from imagegateway.platform.observability import logger, metrics
from imagegateway.platform.settings import get_settings

if TYPE_CHECKING:
    # Types only: the data classes package loads every event type; the batch utility brings it
    # with the first batch.
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord


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
    return process_batch(event, context, lambda record: deliver_record(record, sender))


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
    attempt = receive_count(record)
    try:
        sender.deliver(message)
    except WebhookRejectedError as exc:
        logger.error("webhook URL refused; dropped", extra={"reason": exc.message})
        metrics.add_metric(name="WebhooksRejected", unit="Count", value=1)
        return
    except WebhookDeliveryError as exc:
        metrics.add_metric(name="WebhookAttemptsFailed", unit="Count", value=1)
        delay = next_delay_seconds(attempt)
        extra = {"attempt": attempt, "error": exc.message}
        if delay is None:
            # Left to the queue's own visibility timeout: the next receive dead-letters it.
            logger.error("webhook not delivered after its last attempt", extra=extra)
            raise
        logger.warning("webhook attempt failed; tried again later", extra={**extra, "delay": delay})
        raise RetryLater(delay, exc.message) from exc
    metrics.add_metric(name="WebhooksDelivered", unit="Count", value=1)
    logger.info("webhook delivered", extra={"attempt": attempt})
