"""Use case, the workflow's success path: copy every image into S3, mark the job SUCCESS, answer
the caller's waiting task or queue its webhook, and hand the completion to PublishCompletion.
Safe to retry: keys are deterministic per job and image, so a retried copy overwrites."""

from __future__ import annotations

from imagegateway.domain.errors import JobEndedElsewhereError
from imagegateway.domain.events import Completion
from imagegateway.domain.image_set import select_image_urls
from imagegateway.domain.records import cache_key
from imagegateway.domain.tickets import JobTicket
from imagegateway.platform.observability import logger, metrics
from imagegateway.use_cases.completion import completion_of, tell_everyone
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
        # Cancelled while the upstream finished: its caller was told; the copies stay unused.
        raise JobEndedElsewhereError("the job was cancelled", job_id=ticket.job_id)
    logger.info("stored the job's images", extra={"images": len(images)})
    metrics.add_metric(name="ImagesStored", unit="Count", value=len(images))
    record = deps.jobs.get(ticket.job_id)
    completion = completion_of(record, deps)
    tell_everyone(record, completion, deps)
    return completion
