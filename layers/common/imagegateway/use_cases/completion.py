"""Use case, every job's end: what the caller is told (the completion detail of the event on the
bus, the answer to a waiting task, the webhook), built from the job row once.

A job's callers are its own request's callbacks and those of every later request folded into it
(the same owner, idempotency key and body: `fold_into_job`). Each of those is told with its own
`reference`: its own task answer, its own webhook (an id of its own), and, when its reference is
not the job's, a completion event of its own. Webhooks are signed with the job owner's secret.

Told at least once: the write that ends a job lists it among the untold; `announce` records each
telling done, and the reconciler tells again whatever a job's end still owes (`domain.tellings`).
"""

from __future__ import annotations

from collections.abc import Collection

from imagegateway.domain.base import JobStatus
from imagegateway.domain.errors import BudgetExceededError, InvalidRequestError, retryable_of
from imagegateway.domain.events import CompletedImage, Completion, CompletionDetail
from imagegateway.domain.image_requests import samples_of
from imagegateway.domain.records import Callbacks, JobRecord
from imagegateway.domain.tellings import Telling, left_to_tell, tellings_of, variant_of
from imagegateway.domain.views import ErrorDetail, timings_of
from imagegateway.platform.observability import logger, metrics
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


def announce(record: JobRecord, deps: Ports, *, only: Collection[str] | None = None) -> Completion:
    """Tell an ended job's callers what its end still owes them (every telling of
    `domain.tellings` not yet on the row; `only` restricts to those names): the completion
    events, the waiting tasks' answers, the webhooks (signed with the owner's secret). Each
    telling that fails is left for later, logged and counted; the row then keeps the job among
    the untold, and the reconciler tells the rest (at least once: consumers deduplicate by job id
    and webhook-id). Never raises for a telling: the job's end stands either way."""
    completion = completion_of(record, deps)
    owed = [t for t in left_to_tell(record) if only is None or t.name in only]
    told: list[str] = []
    for telling in owed:
        try:
            _tell(telling, record, completion, deps)
        except Exception:
            logger.exception(
                "could not tell a job's end; told later", extra={"telling": telling.name}
            )
            metrics.add_metric(name="TellingsDeferred", unit="Count", value=1)
            continue
        told.append(telling.name)
    try:
        deps.jobs.record_told(
            record.job_id,
            told=told,
            all_told=not _still_owed(record, told),
            folded=len(record.also_tell),
        )
    except Exception:  # the row still lists the job as untold: its callers hear it again later
        logger.exception("could not record what was told of a job's end")
    return completion


def _still_owed(record: JobRecord, told_now: list[str]) -> bool:
    told = (record.told or frozenset()) | set(told_now)
    return any(telling.name not in told for telling in tellings_of(record))


def _tell(telling: Telling, record: JobRecord, completion: Completion, deps: Ports) -> None:
    callbacks = telling.callbacks
    if telling.variant:  # a folded request: its own reference in what it is told
        completion = Completion.of(
            completion.detail.model_copy(update={"reference": callbacks.reference})
        )
    if telling.channel == "event":
        deps.notifier.publish(completion)
    elif telling.channel == "task" and callbacks.task_token:
        deps.notifier.answer_task(callbacks.task_token, completion)
    elif telling.channel == "webhook" and callbacks.webhook_url:
        deps.notifier.queue_webhook(
            callbacks.webhook_url,
            completion,
            now=deps.clock(),
            owner=record.owner,
            variant=telling.variant,
        )


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
    # Ended before (or while) they were added: on the row all the same (among what the job's
    # end owes, so told later if not now), and told now.
    deps.jobs.add_late_callbacks(job_id, callbacks, now=deps.clock())
    record = deps.jobs.get(job_id)
    variant = variant_of(callbacks)
    mine = [t.name for t in tellings_of(record) if t.variant == variant]
    announce(record, deps, only=mine)
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


def conclude(record: JobRecord, deps: Ports) -> Completion:
    """What the write that ended a FAILURE job (or a job born SUCCESS from the cache) does next,
    once per job: its images back to the budget if it was never sent, and everything its end
    owes told."""
    give_back_if_never_sent(record, deps)
    return announce(record, deps)


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
    if callbacks.task_token:
        deps.notifier.answer_task(callbacks.task_token, completion)
    if callbacks.webhook_url and owner is not None:
        deps.notifier.queue_webhook(
            callbacks.webhook_url, completion, now=deps.clock(), owner=owner
        )
    deps.notifier.publish(completion)
    return completion
