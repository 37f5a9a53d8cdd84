"""Use case, the workflow's success path: copy every image into S3, mark the job SUCCESS, and tell
its callers (the completion event, a waiting task's answer, the webhook; what cannot be told now
is told by the reconciler).
Safe to retry: keys are deterministic per job and image, so a retried copy overwrites. The
SUCCESS is written only over a PENDING job (one ending per job): a job that ended meanwhile
(cancelled, timed out, stored by a duplicate run) is not told again."""

from __future__ import annotations

from imagegateway.domain.errors import JobEndedElsewhereError
from imagegateway.domain.events import Completion
from imagegateway.domain.image_set import select_image_urls
from imagegateway.domain.records import JobRecord, cache_key
from imagegateway.domain.tickets import JobTicket
from imagegateway.domain.upstream_durations import job_shape, sample_of
from imagegateway.platform.observability import logger, metrics
from imagegateway.use_cases.completion import announce
from imagegateway.use_cases.ports import Ports


def store_job(ticket: JobTicket, deps: Ports) -> Completion:
    record = deps.jobs.for_ticket(ticket)
    urls = select_image_urls(ticket.download_urls, ticket.expected_images)
    images = deps.images.copy_all(ticket.job_id, urls)
    now = deps.clock()
    if not deps.jobs.mark_succeeded(
        ticket.job_id,
        images=images,
        upstream_completed_at=ticket.upstream_completed_at or now,
        now=now,
        # A fixed-seed job: the same request of the same caller is served from these images.
        cache_key=cache_key(record.owner, record.kind, record.request),
    ):
        # It ended while the upstream finished (cancelled, timed out) or a duplicate run stored
        # it first: its caller was told by that ending; the copies stay unused.
        raise JobEndedElsewhereError("the job had already ended", job_id=ticket.job_id)
    logger.info("stored the job's images", extra={"images": len(images)})
    metrics.add_metric(name="ImagesStored", unit="Count", value=len(images))
    metrics.add_metric(name="JobsSucceeded", unit="Count", value=1)
    _learn_duration(record, ticket, deps)
    # This write ended the job: it alone tells (the event, the tasks, the webhooks).
    return announce(deps.jobs.get(ticket.job_id), deps)


def _learn_duration(record: JobRecord, ticket: JobTicket, deps: Ports) -> None:
    """How long the upstream took for this job's shape, for the next job's first check. Never
    fails the job: a sample lost is one fewer to predict from."""
    if record.accepted_at is None or ticket.upstream_completed_at is None:
        return  # not followed from its acceptance (a resumed job): nothing to learn
    sample = sample_of(
        accepted_at=record.accepted_at,
        last_pending_at=ticket.last_pending_at,
        done_at=ticket.upstream_completed_at,
    )
    try:
        deps.durations.record(job_shape(record.kind, record.request), sample)
    except Exception:
        logger.exception("could not record the upstream's duration")
        metrics.add_metric(name="DurationWriteFailures", unit="Count", value=1)
