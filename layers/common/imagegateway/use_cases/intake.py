"""Use case, the request queue's intake: send a job the queue accepted upstream (at most once)
and start its workflow, which then finds the upstream id on the row and never POSTs again. Its
transient failures are `RetryLater`: the queue brings the message back, and the upstream's
quota is guarded by the queue's concurrency (docs/design.md)."""

from __future__ import annotations

from imagegateway.domain.base import JobStatus
from imagegateway.domain.errors import GatewayError, RetryLater, SubmitAlreadyClaimedError
from imagegateway.domain.image_requests import samples_of
from imagegateway.domain.tickets import Failure, JobTicket
from imagegateway.platform.observability import logger
from imagegateway.use_cases.ports import Ports
from imagegateway.use_cases.steps.send_job import send_job


def send_and_start(job_id: str, deps: Ports, *, retry_seconds: int) -> None:
    """Send the recorded job upstream (at most once) and start its workflow; safe to repeat."""
    logger.append_keys(job_id=job_id)
    record = deps.jobs.get(job_id)
    if record.status is not JobStatus.PENDING or deps.workflow.status(job_id) is not None:
        return  # a duplicate: its first delivery already handed the job to its workflow
    if record.submit_started_at is not None and record.upstream_id is None:
        # Another delivery is sending it right now (or died doing so: then the reconciler
        # ends the job once its deadline passes). Never a second POST.
        raise RetryLater(retry_seconds, "the same request is being sent upstream")
    ticket = JobTicket(
        job_id=job_id,
        run_token=record.run_token or "",
        status=JobStatus.PENDING,
        expected_images=samples_of(record.request),
        wait_seconds=1,
        deadline_at=record.deadline_at,
    )
    try:
        sent = send_job(ticket, deps)
    except SubmitAlreadyClaimedError as exc:
        # A duplicate delivery claimed it between our read and our claim: it is sending it (or
        # died doing so, and the reconciler ends the job). Never end the job from here.
        raise RetryLater(retry_seconds, "the same request is being sent upstream") from exc
    except GatewayError as exc:
        # The upstream's answer ends the job (an unknown outcome, a refused key...): the
        # workflow records it and tells the caller, like any other failure.
        failure = Failure(code=exc.code, message=exc.message)
        sent = ticket.model_copy(update={"status": JobStatus.FAILURE, "failure": failure})
    if sent.status is JobStatus.PENDING and sent.upstream_id is None and not sent.deadline_passed:
        # The upstream did not take it (429, unreachable): the queue holds it meanwhile.
        raise RetryLater(sent.wait_seconds, "the upstream did not take the job yet")
    if not deps.workflow.start(sent):
        # The upstream has the job: the message comes back and starts its workflow (the POST
        # is not sent again), instead of the job waiting for the reconciler.
        raise RetryLater(retry_seconds, "the job's workflow could not be started")
