"""RequestQueue consumer: each envelope (from SQS, or an event the bus delivered) becomes one job,
sent upstream once from here, then followed by its workflow; a request that can never run ends
as an Image Generation Failed event. Partial batch failures bring back only what must retry."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from imagegateway.entrypoints.handlers import queue_consumer
from imagegateway.entrypoints.queue_batch import process_batch
from imagegateway.entrypoints.request_queue import take_request


def take_requests(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_batch(event, context, lambda record: take_request(record, context))


lambda_handler = queue_consumer(
    take_requests,
    requires=(
        "state_machine_arn",
        "idempotency_table_name",
        "upstream_api_key_secret_name",
        "event_bus_name",
        "usage_table_name",
    ),
)
