"""SQS consumer of the webhook queue: one signed delivery attempt per message; a failed one is
hidden for the retry schedule's next delay and reported as a batch item failure."""

from imagegateway.deliver_webhooks import deliver_webhooks
from imagegateway.handlers import queue_consumer

lambda_handler = queue_consumer(deliver_webhooks, requires=("webhook_signing_secret_name",))
