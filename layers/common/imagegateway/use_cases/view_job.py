"""Use case, HTTP: the caller's view of its job, with freshly presigned URLs."""

from __future__ import annotations

import time

from imagegateway.domain.base import JobKind, JobStatus
from imagegateway.domain.errors import JobNotFoundError, retryable_of
from imagegateway.domain.records import JobRecord
from imagegateway.domain.views import ImageView, JobView, timings_of
from imagegateway.platform.observability import logger
from imagegateway.platform.time_budget import remaining_seconds
from imagegateway.use_cases.ports import Ports

# How often a waiting request reads the job row again (a consistent read each time).
WAIT_STEP_SECONDS = 0.5


def owned_record(job_id: str, *, owner: str, kind: JobKind | None = None, deps: Ports) -> JobRecord:
    """The caller's own job. Another caller's job, or a job asked for on another kind's route,
    is reported as unknown, so ids cannot be probed."""
    record = deps.jobs.get(job_id)
    if record.owner != owner or (kind is not None and record.kind is not kind):
        raise JobNotFoundError(f"no job {job_id}")
    logger.append_keys(job_id=job_id)
    return record


def view_of(record: JobRecord, deps: Ports) -> JobView:
    """The caller's view of a job row, with freshly presigned URLs once it succeeded."""
    view = JobView(
        status=record.status,
        id=record.job_id,
        kind=record.kind,
        timings=timings_of(record),
        tokens=record.tokens,
        warnings=record.warnings or None,
        cached_from=record.cached_from,
        request=record.request,
    )
    if record.status is JobStatus.SUCCESS:
        view.images = [
            ImageView(
                url=deps.images.presigned_url(image.key),
                content_type=image.content_type,
                size=image.size,
                sha256=image.sha256,
            )
            for image in record.images
        ]
        view.download_urls = [image.url for image in view.images]
    elif record.status is JobStatus.PENDING:
        view.estimated_done_at = record.estimated_done_at
        view.estimate = "learned" if record.estimated_done_at else "none"
    elif record.status is JobStatus.FAILURE:
        view.error = record.error_message or "the job failed"
        view.error_code = record.error_code
        view.retryable = retryable_of(record.error_code)
    return view


def view_job(
    job_id: str,
    *,
    owner: str,
    kind: JobKind | None = None,
    deps: Ports,
    wait_seconds: float = 0,
) -> JobView:
    """The caller's job; with `wait_seconds`, once it ends or when that time is up (a long
    poll, never past the invocation's own time), whichever comes first."""
    record = owned_record(job_id, owner=owner, kind=kind, deps=deps)
    ends = time.monotonic() + min(wait_seconds, max(0.0, remaining_seconds() - 1))
    while record.status is JobStatus.PENDING and (left := ends - time.monotonic()) > 0:
        deps.sleep(min(WAIT_STEP_SECONDS, left))
        record = deps.jobs.get(job_id)
    return view_of(record, deps)
