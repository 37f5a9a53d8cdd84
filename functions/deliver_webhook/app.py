"""SQS consumer of the webhook queue: one signed delivery attempt per message; a failed one is
hidden for the retry schedule's next delay and reported as a batch item failure."""

from imagegateway.entrypoints.handlers import queue_consumer
from imagegateway.entrypoints.webhook_queue import deliver_webhooks

lambda_handler = queue_consumer(deliver_webhooks, requires=("webhook_signing_secret_name",))
