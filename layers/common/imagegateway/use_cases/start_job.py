"""Use case, HTTP: start a recorded job's workflow, or end the job at once if Step Functions
will not start it (throttled, unavailable, a first deploy whose role lacks
states:StartExecution). Without this the caller would hold a PENDING job that nothing follows
until the reconciler ends it after its deadline."""

from __future__ import annotations

from imagegateway.domain.errors import PUBLIC_MESSAGES, FailureCode, WorkflowNotStartedError
from imagegateway.domain.tickets import JobTicket
from imagegateway.platform.observability import logger, metrics
from imagegateway.use_cases.completion import conclude
from imagegateway.use_cases.ports import Ports


def start_job(ticket: JobTicket, deps: Ports) -> None:
    """Start the job's execution; WorkflowNotStartedError (a 503) when it cannot be. The job
    then ends FAILURE WORKFLOW_NOT_STARTED, its images are given back to the caller's budget and
    its end is told like any other (event, webhook). Should the execution have started despite
    the error, it finds the job ended and stops quietly; and if it already claimed the submit,
    the job is left to it."""
    if deps.workflow.start(ticket):
        return
    code = FailureCode.WORKFLOW_NOT_STARTED
    message = PUBLIC_MESSAGES[code]
    if deps.jobs.mark_not_started(ticket.job_id, code=code, message=message, now=deps.clock()):
        metrics.add_metric(name="JobsNotStarted", unit="Count", value=1)
        try:
            conclude(deps.jobs.get(ticket.job_id), deps)
        except Exception:  # the caller still hears why (a 503), whatever else is down
            logger.exception("could not tell the end of a job whose workflow did not start")
        raise WorkflowNotStartedError(message, job_id=ticket.job_id)
