"""Entry point, the webhook queue's consumer. Each received message is one delivery attempt (its
receive count is the attempt's number).

Every record of a batch is attempted at once, each in a thread of its own, and each attempt ends
by its deadline (WebhookSender): a receiver that holds its attempt delays no other caller's, and
the batch takes one attempt's time whatever its size. So every received record is attempted
and answered in the partial batch response before the function's timeout (the template test
holds Timeout against the attempt's time and BatchSize against MAX_PARALLEL_ATTEMPTS): no batch
returns to the queue whole, no delivered webhook is sent again, no untried message loses a
receive.

A failed attempt hides its message for the schedule's next delay and is reported as a batch
item failure, so the queue does the waiting; after the last attempt the queue's redrive policy
(maxReceiveCount = webhooks.MAX_ATTEMPTS) moves it to the dead-letter queue. A message that can
never be delivered (not a WebhookMessage, a refused URL) is logged, counted and dropped.
"""

from __future__ import annotations

import contextvars
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from enum import Enum
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from imagegateway.adapters.webhooks import (
    WebhookDeliveryError,
    WebhookMessage,
    WebhookNotAttempted,
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


# SQS's largest batch (without a batching window): the template's BatchSize is at most this, so
# every record of a batch has its thread from the start.
MAX_PARALLEL_ATTEMPTS = 10
# How long the batch waits past an attempt's deadline for it to report (the socket's shutdown
# surfacing as an error). An attempt still running then (a name resolution, which nothing can
# interrupt) is a failed attempt; it cannot send later, its deadline having passed.
REPORT_GRACE_SECONDS = 1.0

# What an attempt ended with: None when delivered, else what it raised.
Outcome = BaseException | None


def deliver_batch(
    event: dict[str, Any], context: LambdaContext, sender: WebhookSender
) -> dict[str, Any]:
    outcomes = attempt_all(event.get("Records") or [], sender)

    def settle(record: SQSRecord) -> None:
        deliver_record(record, sender, outcome=outcomes.get(record.message_id, _Pending.NOT_RUN))

    return process_batch(event, context, settle)


def attempt_all(records: list[dict[str, Any]], sender: WebhookSender) -> dict[str, Outcome]:
    """Each record's attempt, all at once; by message id. Malformed records are left out (the
    batch's handler drops them, with a log line)."""
    messages = {}
    for record in records:
        message = _parse(record.get("body"))
        if message is not None and isinstance(record.get("messageId"), str):
            messages[record["messageId"]] = message
    if not messages:
        return {}
    # Each owner's secrets, read once and before any attempt's clock starts.
    secrets: dict[str, Sequence[str] | Exception] = {}
    for message in messages.values():
        if message.owner not in secrets:
            try:
                secrets[message.owner] = sender.signing_secrets(message.owner)
            except Exception as exc:  # settled with each of the owner's records
                secrets[message.owner] = exc
    workers = ThreadPoolExecutor(
        max_workers=min(len(messages), MAX_PARALLEL_ATTEMPTS), thread_name_prefix="webhook"
    )
    # Each thread runs in a copy of this context: the invocation's time budget goes with it.
    futures = {
        message_id: workers.submit(
            contextvars.copy_context().run, _attempt, sender, message, secrets[message.owner]
        )
        for message_id, message in messages.items()
    }
    wait(futures.values(), timeout=sender.attempt_seconds + REPORT_GRACE_SECONDS)
    # Never waits for a straggler: it ends on its own deadline.
    workers.shutdown(wait=False, cancel_futures=True)
    return {message_id: _outcome(future) for message_id, future in futures.items()}


def _attempt(
    sender: WebhookSender, message: WebhookMessage, secrets: Sequence[str] | Exception | None = None
) -> Outcome:
    """`secrets`: the owner's, read beforehand (None: the attempt reads them)."""
    if isinstance(secrets, Exception):
        return secrets
    try:
        if secrets is None:
            sender.deliver(message)
        else:
            sender.deliver(message, secrets=secrets)
    except Exception as exc:  # settled with its record, as the record's own error
        return exc
    return None


def _outcome(future: Future[Outcome]) -> Outcome:
    if not future.done() or future.cancelled():
        return WebhookDeliveryError("the webhook attempt did not end by its deadline")
    return future.result()


def _parse(body: Any) -> WebhookMessage | None:
    try:
        return WebhookMessage.model_validate_json(body)
    except ValidationError:
        return None


class _Pending(Enum):
    """A record whose attempt is still to be made (deliver_record on its own)."""

    NOT_RUN = "not run"


def deliver_record(
    record: SQSRecord, sender: WebhookSender, *, outcome: Outcome | _Pending = _Pending.NOT_RUN
) -> None:
    """One attempt at one message (or the outcome of the one already made); raises (so the
    record is retried) only when it may succeed later."""
    message = _message_of(record)
    if message is None:
        return
    logger.append_keys(job_id=message.job_id, webhook_id=message.webhook_id)
    try:
        if outcome is _Pending.NOT_RUN:
            outcome = _attempt(sender, message)
        _settle(record, outcome)
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


def _settle(record: SQSRecord, outcome: Outcome) -> None:
    attempt = receive_count(record)
    if isinstance(outcome, WebhookRejectedError):
        logger.error("webhook URL refused; dropped", extra={"reason": outcome.message})
        metrics.add_metric(name="WebhooksRejected", unit="Count", value=1)
        return
    if isinstance(outcome, WebhookNotAttempted):
        # Never happens within the template's limits (see the module's docstring); if it does,
        # the message comes back at once rather than after a delay of the schedule.
        logger.error("webhook not attempted; back on the queue", extra={"attempt": attempt})
        raise RetryLater(0, outcome.message) from outcome
    if isinstance(outcome, WebhookDeliveryError):
        metrics.add_metric(name="WebhookAttemptsFailed", unit="Count", value=1)
        delay = next_delay_seconds(attempt)
        extra = {"attempt": attempt, "error": outcome.message}
        if delay is None:
            # Left to the queue's own visibility timeout: the next receive dead-letters it.
            logger.error("webhook not delivered after its last attempt", extra=extra)
            raise outcome
        logger.warning("webhook attempt failed; tried again later", extra={**extra, "delay": delay})
        raise RetryLater(delay, outcome.message) from outcome
    if outcome is not None:
        raise outcome  # not ours (a configuration error, say): a failed record, as before
    metrics.add_metric(name="WebhooksDelivered", unit="Count", value=1)
    logger.info("webhook delivered", extra={"attempt": attempt})
