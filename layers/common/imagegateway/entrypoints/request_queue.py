"""Entry point, the request queue's consumer: one envelope (an SQS message, or an `Image
Generation Requested` event the bus delivered through the queue) is read, accepted as a job
(`use_cases.submit_job.accept_job`, once per idempotency key) and sent upstream from here
(`use_cases.intake.send_and_start`).

Sending from the consumer is what makes the queue the upstream's quota guard: the event-source
mapping's maximum concurrency is the number of upstream POSTs in flight, and a burst waits in
the queue. The job's workflow then starts past its submit (its SubmitUpstream task finds the
upstream id on the row and never POSTs again).

- A message that can never run (not JSON, not an envelope, an invalid request, a reused
  idempotency key) is not retried: it ends at once as an `Image Generation Failed` event with
  `INVALID_REQUEST` and details naming the fields, and its task token and webhook are told.
  One over the daily budget of its owner ends the same way, with `BUDGET_EXCEEDED`, and nothing
  is sent.
- Who owns a request (`owner_of`): a message sent to the request queue, the principal SQS names
  as its sender (`SenderId`); one the bus delivered (through its own queue, that nothing but the
  bus's rule may send to), the account the event names. Never a field of the envelope.
- A transient failure (no upstream key yet, the upstream refusing or unreachable, the same key
  in flight) brings the message back later (`RetryLater`); after the queue's last receive it
  waits in the dead-letter queue, and its job row (if one was written) is ended by the
  reconciler after its deadline.
- A redelivered message, an event delivered twice, or two messages with one `idempotency_key`
  make one job and one upstream POST.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from imagegateway.domain.errors import (
    BudgetExceededError,
    IdempotencyAlreadyInProgressError,
    IdempotencyKeyReusedError,
    IdempotencyValidationError,
    InvalidRequestError,
    RetryLater,
    UnreadableInputError,
    UpstreamKeyMissingError,
)
from imagegateway.domain.events import DetailType, Envelope
from imagegateway.domain.json_text import one_line, read_json
from imagegateway.domain.owners import account_owner, principal_owner
from imagegateway.domain.prompt_tokens import measure_prompts
from imagegateway.domain.records import Callbacks, one_webhook
from imagegateway.domain.request_kinds import REQUEST_MODELS
from imagegateway.domain.views import ErrorDetail, JobView, error_details
from imagegateway.entrypoints.idempotency import submit_job_once
from imagegateway.entrypoints.wiring import collaborators
from imagegateway.platform.observability import logger, metrics
from imagegateway.use_cases.completion import fold_into_job, refuse_request
from imagegateway.use_cases.intake import send_and_start
from imagegateway.use_cases.ports import Ports
from imagegateway.use_cases.submit_job import accept_job

if TYPE_CHECKING:
    # Types only: the data classes package loads every event type; the batch utility brings it
    # with the first batch.
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

# When a message comes back after a transient failure: a short wait, doubled per receive.
FIRST_RETRY_SECONDS = 5
MAX_RETRY_SECONDS = 300


@dataclass(frozen=True)
class ReadRequest:
    """A message's envelope, its validated upstream body, the key that dedupes it, and what
    the caller is told when the job ends (the envelope's, with the request's own `webhook`)."""

    envelope: Envelope
    body: dict[str, Any]
    key: str
    callbacks: Callbacks


def read_message(message_body: str) -> Any:
    """The message's JSON, read once for everything taken from it (its owner on the bus, its
    request, its callbacks). Raises InvalidRequestError (permanent) naming what is wrong, and
    nothing else, whatever the message: an unreadable one (not JSON, nested too deep, a number
    no field can hold, a lone surrogate, a key said twice) would otherwise fail on every
    receive until the dead-letter queue, with no Failed event."""
    try:
        return read_json(message_body, what="the message")
    except UnreadableInputError as exc:
        raise InvalidRequestError(exc.message, details=exc.details) from exc


def read_request(message_body: str, message_id: str) -> ReadRequest:
    """Raises InvalidRequestError (permanent) naming what is wrong."""
    return request_of(read_message(message_body), message_id)


def request_of(data: Any, message_id: str) -> ReadRequest:
    """The request in a read message; InvalidRequestError naming what is wrong."""
    fallback_key = f"message:{message_id}"
    if isinstance(data, dict) and data.get("detail-type") == DetailType.REQUESTED:
        # Delivered by the bus: the envelope is the event's detail, and the event's id
        # dedupes a delivery the bus repeats.
        fallback_key = f"event:{data.get('id') or message_id}"
        data = data.get("detail")
    try:
        envelope = Envelope.model_validate(data)
    except ValidationError as exc:
        raise _invalid("invalid envelope", error_details(exc.errors())) from exc
    try:
        model = REQUEST_MODELS[envelope.kind].model_validate_json(json.dumps(envelope.request))
    except ValidationError as exc:
        raise _invalid("invalid request", error_details(exc.errors(), prefix="request")) from exc
    callbacks = Callbacks.model_validate(envelope.model_dump(include=set(Callbacks.model_fields)))
    webhook = one_webhook(callbacks.webhook_url, model.webhook, body_field="request.webhook")
    return ReadRequest(
        envelope,
        model.upstream_body(),
        envelope.idempotency_key or fallback_key,
        callbacks.model_copy(update={"webhook_url": webhook}),
    )


def _invalid(summary: str, details: list[ErrorDetail]) -> InvalidRequestError:
    listed = "; ".join(f"{d.field}: {d.message}" for d in details[:3])
    return InvalidRequestError(
        one_line(f"{summary}: {listed}", 1000), details=[(d.field, d.message) for d in details]
    )


def _callbacks_in(data: Any) -> Callbacks:
    """Whatever callbacks a refused message names validly, to tell its caller; none when the
    message cannot be read at all (`data` None: its Failed event then has no reference)."""
    if isinstance(data, dict) and data.get("detail-type") == DetailType.REQUESTED:
        data = data.get("detail")
    fields = {k: data[k] for k in Callbacks.model_fields if isinstance(data, dict) and k in data}
    request = data.get("request") if isinstance(data, dict) else None
    if "webhook_url" not in fields and isinstance(request, dict) and "webhook" in request:
        fields["webhook_url"] = request["webhook"]  # the request's own webhook, as the gateway's
    told: dict[str, Any] = {}
    for name, value in fields.items():
        try:
            told |= Callbacks.model_validate({name: value}).model_dump(exclude_none=True)
        except ValidationError:
            continue
    return Callbacks.model_validate(told)


def owner_of(record: SQSRecord, bus_request_queue_arn: str, data: Any) -> str:
    """The principal AWS names for the message (domain.owners): on the bus's queue the account
    of the event (`data`, the message as read), on any other its SQS sender. InvalidRequestError
    if none."""
    try:
        if bus_request_queue_arn and record.event_source_arn == bus_request_queue_arn:
            account = data.get("account") if isinstance(data, dict) else None
            return account_owner(account if isinstance(account, str) else "")
        return principal_owner(record.attributes.sender_id or "")
    except (KeyError, ValueError) as exc:
        raise InvalidRequestError(
            "the message's sender is not an AWS principal",
            details=[("sender", "AWS names no principal for this message")],
        ) from exc


def _retry_seconds(record: SQSRecord) -> int:
    receives = int(record.attributes.approximate_receive_count or 1)
    wait: int = FIRST_RETRY_SECONDS * 2 ** min(receives - 1, 16)
    return min(MAX_RETRY_SECONDS, wait)


def _refuse(
    data: Any,
    error: InvalidRequestError | BudgetExceededError,
    deps: Ports,
    *,
    owner: str | None,
) -> None:
    refuse_request(_callbacks_in(data), error, deps, owner=owner)
    logger.info("refused a queued request", extra={"error": error.message})
    metrics.add_metric(name="QueuedRequestsRefused", unit="Count", value=1)


def take_request(record: SQSRecord, context: LambdaContext | None) -> None:
    deps = collaborators()
    owner: str | None = None
    data: Any = None
    try:
        data = read_message(record.body)
        owner = owner_of(record, deps.settings.bus_request_queue_arn, data)
        request = request_of(data, record.message_id)
        envelope, callbacks = request.envelope, request.callbacks
        accept = partial(
            accept_job,
            envelope.kind,
            request.body,
            owner=owner,
            deps=deps,
            tokens=measure_prompts(request.body),
            callbacks=callbacks,
            use_cache=envelope.cache,
        )
        accepted: list[str] = []

        def accept_first() -> JobView:
            view = accept().view
            accepted.append(view.id)
            return view

        view = submit_job_once(
            envelope.kind,
            request.body,
            owner=owner,
            key=request.key,
            lambda_context=context,
            accept=accept_first,
        )
    except (InvalidRequestError, BudgetExceededError) as exc:
        _refuse(data, exc, deps, owner=owner)
        return
    except IdempotencyValidationError:
        message = "this idempotency_key was already used by this sender with a different request"
        error = IdempotencyKeyReusedError(message, details=[("idempotency_key", message)])
        _refuse(data, error, deps, owner=owner)
        return
    except IdempotencyAlreadyInProgressError as exc:
        raise RetryLater(_retry_seconds(record), "the same key is in flight") from exc
    except UpstreamKeyMissingError as exc:
        raise RetryLater(MAX_RETRY_SECONDS, "the gateway has no upstream API key yet") from exc
    if not accepted:
        # The same owner, key and body as an earlier request: the same job, whose end this
        # request's own callbacks hear of too (at once if it has ended).
        fold_into_job(view.id, callbacks, deps=deps)
    # Also for a duplicate: the first delivery may have stopped before sending (it never sends
    # twice: the job's submit is claimed once).
    send_and_start(view.id, deps, retry_seconds=_retry_seconds(record))
