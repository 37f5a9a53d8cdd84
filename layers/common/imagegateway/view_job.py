"""Use case, HTTP: the caller's view of its job, with freshly presigned URLs."""

from __future__ import annotations

from datetime import datetime

from imagegateway.collaborators import Collaborators
from imagegateway.errors import JobNotFoundError
from imagegateway.models import ImageView, JobKind, JobRecord, JobStatus, JobView, Timings
from imagegateway.observability import logger


def view_job(
    job_id: str, *, owner: str, kind: JobKind | None = None, deps: Collaborators
) -> JobView:
    """Another caller's job, or a job asked for on another kind's route, is reported as
    unknown, so ids cannot be probed."""
    record = deps.jobs.get(job_id)
    if record.owner != owner or (kind is not None and record.kind is not kind):
        raise JobNotFoundError(f"no job {job_id}")
    logger.append_keys(job_id=job_id)
    view = JobView(status=record.status, id=job_id, timings=timings_of(record))
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
    elif record.status is JobStatus.FAILURE:
        view.error = record.error_message or "the job failed"
        view.error_code = record.error_code
    return view


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return round((end - start).total_seconds(), 3) if start and end else None


def timings_of(record: JobRecord) -> Timings:
    return Timings(
        created_at=record.created_at,
        accepted_at=record.accepted_at,
        upstream_completed_at=record.upstream_completed_at,
        completed_at=record.completed_at,
        queued_seconds=_seconds(record.created_at, record.accepted_at),
        upstream_seconds=_seconds(
            record.accepted_at or record.created_at, record.upstream_completed_at
        ),
        copy_seconds=_seconds(record.upstream_completed_at, record.completed_at),
        total_seconds=_seconds(record.created_at, record.completed_at),
    )
