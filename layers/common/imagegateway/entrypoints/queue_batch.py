"""SQS batches the Powertools way (BatchProcessor, partial batch responses), plus the one thing
it leaves to us: a record that should come back later, not at the queue's visibility timeout.

A record handler that raises `RetryLater(seconds)` has its message hidden for that long (SQS's
ChangeMessageVisibility) and reported as a batch item failure, so SQS delivers it again then;
the queue's redrive policy moves it to its dead-letter queue after its last receive. Any other
exception is a failure retried at the queue's own visibility timeout. Every failed record is
answered in batchItemFailures, even when all of them failed: a failed attempt is an expected
outcome, not an error of the function.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from imagegateway.adapters.aws_clients import sqs_client
from imagegateway.domain.errors import RetryLater
from imagegateway.platform.observability import logger

if TYPE_CHECKING:
    # Types only: the data classes package loads every event type; the batch utility brings it
    # with the first batch.
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord


def receive_count(record: SQSRecord) -> int:
    """The record's receive count: 1 on the first delivery of the message."""
    try:
        return max(1, int(record.attributes.approximate_receive_count))
    except (KeyError, TypeError, ValueError):
        return 1


@lru_cache(maxsize=8)
def queue_url_of(queue_arn: str) -> str:
    """arn:aws:sqs:<region>:<account>:<name> to its URL (one GetQueueUrl per queue and process)."""
    parts = queue_arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        raise ValueError(f"not an SQS queue ARN: {queue_arn!r}")
    answer = sqs_client().get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])
    return answer["QueueUrl"]


def hide(record: SQSRecord, seconds: int) -> None:
    """Make the record's message visible again only in `seconds`. If SQS refuses, the queue's
    own visibility timeout applies instead: the record still comes back, only sooner."""
    try:
        sqs_client().change_message_visibility(
            QueueUrl=queue_url_of(record.event_source_arn),
            ReceiptHandle=record.receipt_handle,
            VisibilityTimeout=seconds,
        )
    except (ClientError, BotoCoreError, ValueError):
        logger.exception("could not set when the message comes back")


def process_batch(
    event: dict[str, Any],
    context: LambdaContext,
    handle: Callable[[SQSRecord], None],
) -> dict[str, Any]:
    def handle_record(record: SQSRecord) -> None:
        try:
            handle(record)
        except RetryLater as later:
            logger.info(
                "the message comes back later",
                extra={"reason": str(later), "seconds": later.seconds},
            )
            hide(record, later.seconds)
            raise

    # Imported with the first batch: the batch utility also builds Powertools' parser models
    # (pydantic) for every event type it knows, which the import of a consumer need not pay.
    from aws_lambda_powertools.utilities.batch import (
        BatchProcessor,
        EventType,
        process_partial_response,
    )

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    response = process_partial_response(
        event=event, record_handler=handle_record, processor=processor, context=context
    )
    return {"batchItemFailures": list(response["batchItemFailures"])}
