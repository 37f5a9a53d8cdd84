"""Use case, every job's end: what the caller is told (the completion detail of the event on the
bus, the answer to a waiting task, the webhook), built from the job row once.

A job's callers are its own request's callbacks and those of every later request folded into it
(the same owner, idempotency key and body: `fold_into_job`). Each of those is told with its own
`reference`: its own task answer, its own webhook (an id of its own), and, when its reference is
not the job's, a completion event of its own. Webhooks are signed with the job owner's secret.
"""

from __future__ import annotations

import hashlib

from imagegateway.domain.base import JobStatus
from imagegateway.domain.errors import BudgetExceededError, InvalidRequestError, retryable_of
from imagegateway.domain.events import CompletedImage, Completion, CompletionDetail
from imagegateway.domain.image_requests import samples_of
from imagegateway.domain.records import Callbacks, JobRecord
from imagegateway.domain.views import ErrorDetail, timings_of
from imagegateway.platform.observability import logger
from imagegateway.use_cases.ports import Ports


def completion_of(record: JobRecord, deps: Ports) -> Completion:
    callbacks = record.callbacks or Callbacks()
    detail = CompletionDetail(
        job_id=record.job_id,
        kind=record.kind,
        status=record.status,
        reference=callbacks.reference,
        timings=timings_of(record),
    )
    if record.status is JobStatus.SUCCESS:
        detail.images = [
            CompletedImage(
                bucket=deps.settings.images_bucket_name,
                key=image.key,
                url=deps.images.presigned_url(image.key),
                content_type=image.content_type,
                size=image.size,
                sha256=image.sha256,
            )
            for image in record.images
        ]
    else:
        detail.error = record.error_message or "the job failed"
        detail.error_code = record.error_code
        detail.retryable = retryable_of(record.error_code)
    return Completion.of(detail)


def tell_caller(
    callbacks: Callbacks | None,
    completion: Completion,
    deps: Ports,
    *,
    owner: str,
    variant: str = "",
) -> None:
    """The task token and the webhook a caller asked for (the webhook signed with `owner`'s
    secret). At least once: a retried task may answer again (a settled token is ignored; a
    webhook keeps its webhook-id)."""
    if callbacks is None:
        return
    if callbacks.task_token:
        deps.notifier.answer_task(callbacks.task_token, completion)
    if callbacks.webhook_url:
        deps.notifier.queue_webhook(
            callbacks.webhook_url, completion, now=deps.clock(), owner=owner, variant=variant
        )


def tell_everyone(record: JobRecord, completion: Completion, deps: Ports) -> None:
    """Everything the job's callers asked for, but its own completion event (published by the
    workflow, or by `finish_outside_workflow`)."""
    tell_caller(record.callbacks, completion, deps, owner=record.owner)
    for folded in record.also_tell:
        _tell_folded(record, folded, completion, deps)


def _tell_folded(
    record: JobRecord, callbacks: Callbacks, completion: Completion, deps: Ports
) -> None:
    own = Completion.of(completion.detail.model_copy(update={"reference": callbacks.reference}))
    tell_caller(callbacks, own, deps, owner=record.owner, variant=_variant_of(callbacks))
    job_reference = record.callbacks.reference if record.callbacks else None
    if callbacks.reference and callbacks.reference != job_reference:
        deps.notifier.publish(own)


def _variant_of(callbacks: Callbacks) -> str:
    """The same callbacks, the same id suffix: a repeated webhook keeps its webhook-id."""
    text = callbacks.model_dump_json(exclude_none=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def fold_into_job(job_id: str, callbacks: Callbacks, *, deps: Ports) -> None:
    """A later request with the same owner, key and body is the same job: its own callbacks are
    told when the job ends, or now if it has ended already. Callbacks the job already tells
    (a redelivered message) are not added again."""
    if callbacks == Callbacks():
        return
    record = deps.jobs.get(job_id)
    if callbacks == record.callbacks or callbacks in record.also_tell:
        return
    if deps.jobs.add_callbacks(job_id, callbacks, now=deps.clock()):
        logger.info("a duplicate request's callbacks will be told when the job ends")
        return
    # Ended before (or while) they were added: nobody else will tell them.
    record = deps.jobs.get(job_id)
    _tell_folded(record, callbacks, completion_of(record, deps), deps)
    logger.info("told a duplicate request of a job that had ended")


def give_back_if_never_sent(record: JobRecord, deps: Ports) -> None:
    """A job that ended FAILURE without its POST ever being sent was charged nothing: its images
    no longer count against its caller's daily budget. Call once per job end (after the write
    that ended it), so nothing is given back twice."""
    if record.status is not JobStatus.FAILURE or record.submit_started_at or record.upstream_id:
        return
    try:
        deps.usage.give_back(
            record.owner, samples_of(record.request), accepted_at=record.created_at
        )
    except Exception:  # the job's end stands; the caller's count stays a little high today
        logger.exception("could not give a job's images back to its caller's budget")


def finish_outside_workflow(record: JobRecord, deps: Ports) -> Completion:
    """A job ended by the reconciler or cancelled: the event the workflow would have put on the
    bus, too."""
    give_back_if_never_sent(record, deps)
    completion = completion_of(record, deps)
    tell_everyone(record, completion, deps)
    deps.notifier.publish(completion)
    return completion


def refuse_request(
    callbacks: Callbacks,
    error: InvalidRequestError | BudgetExceededError,
    deps: Ports,
    *,
    owner: str | None,
) -> Completion:
    """A request that never became a job (the queue's intake refused it: invalid, or over its
    owner's budget): its Failed event, its waiting task and its webhook, like a job's end. The
    webhook is signed with its owner's secret; a request without one (AWS named no principal
    for it) has no webhook sent."""
    fields = error.details if isinstance(error, InvalidRequestError) else []
    detail = CompletionDetail(
        status=JobStatus.FAILURE,
        reference=callbacks.reference,
        error=error.message,
        error_code=error.code,
        retryable=error.code.retryable,
        details=[ErrorDetail(field=field, message=message) for field, message in fields],
    )
    completion = Completion.of(detail)
    if owner is None:
        callbacks = callbacks.model_copy(update={"webhook_url": None})
    tell_caller(callbacks, completion, deps, owner=owner or "")
    deps.notifier.publish(completion)
    return completion
