"""Use case, every job's end: what the caller is told (the completion detail of the event on the
bus, the answer to a waiting task, the webhook), built from the job row once."""

from __future__ import annotations

from imagegateway.domain.base import JobStatus
from imagegateway.domain.errors import BudgetExceededError, InvalidRequestError
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
    return Completion.of(detail)


def tell_caller(callbacks: Callbacks | None, completion: Completion, deps: Ports) -> None:
    """The task token and the webhook a caller asked for. At least once: a retried task may
    answer again (a settled token is ignored; a webhook keeps its webhook-id)."""
    if callbacks is None:
        return
    if callbacks.task_token:
        deps.notifier.answer_task(callbacks.task_token, completion)
    if callbacks.webhook_url:
        deps.notifier.queue_webhook(callbacks.webhook_url, completion, now=deps.clock())


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
    tell_caller(record.callbacks, completion, deps)
    deps.notifier.publish(completion)
    return completion


def refuse_request(
    callbacks: Callbacks, error: InvalidRequestError | BudgetExceededError, deps: Ports
) -> Completion:
    """A request that never became a job (the queue's intake refused it: invalid, or over its
    caller's budget): its Failed event, its waiting task and its webhook, like a job's end."""
    fields = error.details if isinstance(error, InvalidRequestError) else []
    detail = CompletionDetail(
        status=JobStatus.FAILURE,
        reference=callbacks.reference,
        error=error.message,
        error_code=error.code,
        details=[ErrorDetail(field=field, message=message) for field, message in fields],
    )
    completion = Completion.of(detail)
    tell_caller(callbacks, completion, deps)
    deps.notifier.publish(completion)
    return completion
