"""Use case, HTTP: a caller stops following its job. The job ends FAILURE with CANCELLED (row
first: it is the source of truth), its executions are stopped, and the caller hears of it like
any other end: the completion event, a waiting task, a webhook. Idempotent: a cancelled job
stays cancelled; a job that already ended otherwise is left as it is."""

from __future__ import annotations

from imagegateway.domain.base import JobStatus
from imagegateway.domain.errors import PUBLIC_MESSAGES, FailureCode, JobFinishedError
from imagegateway.domain.views import JobView
from imagegateway.platform.observability import logger, metrics
from imagegateway.use_cases.completion import conclude
from imagegateway.use_cases.ports import Ports
from imagegateway.use_cases.view_job import owned_record, view_of

CANCELLED_MESSAGE = PUBLIC_MESSAGES[FailureCode.CANCELLED]


def cancel_job(job_id: str, *, owner: str, deps: Ports) -> JobView:
    record = owned_record(job_id, owner=owner, deps=deps)
    if record.status is JobStatus.PENDING and deps.jobs.mark_cancelled(
        job_id, message=CANCELLED_MESSAGE, now=deps.clock()
    ):
        deps.workflow.stop(job_id, cause=CANCELLED_MESSAGE)
        record = deps.jobs.get(job_id)
        conclude(record, deps)
        logger.info("job cancelled")
        metrics.add_metric(name="JobsCancelled", unit="Count", value=1)
        return view_of(record, deps)
    record = deps.jobs.get(job_id)  # it may have ended in the meantime
    if record.status is JobStatus.FAILURE and record.error_code == FailureCode.CANCELLED:
        return view_of(record, deps)
    raise JobFinishedError(
        f"the job already ended {record.status.value}", job_id=job_id, status=record.status.value
    )
