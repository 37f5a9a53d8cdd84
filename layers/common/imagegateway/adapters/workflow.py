"""The Step Functions adapter: start a job's execution, and ask how one ended."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from botocore.exceptions import BotoCoreError, ClientError

from imagegateway.adapters.aws_clients import error_code, sfn_client
from imagegateway.domain.tickets import JobTicket
from imagegateway.platform.observability import logger, metrics

RESUME_SUFFIX = "-resume"
# The longest an Express execution lives (AWS's limit), and a margin for clocks and start-up.
EXPRESS_LIFETIME = timedelta(minutes=5)
EXPRESS_LIFETIME_MARGIN = timedelta(minutes=1)


class Workflow:
    """Executions of the job state machine, each named after its job (so a second start can
    never fork a job: Step Functions refuses a second execution of one name).

    Express executions (WorkflowType=EXPRESS) cannot be described or stopped, and their names
    are not checked for uniqueness: whether one may still run is judged by time (none lives
    past 5 minutes), and a cancelled job's execution stops itself at its next task."""

    def __init__(self, state_machine_arn: str, *, express: bool = False) -> None:
        self._machine = state_machine_arn
        self._express = express

    def start(self, ticket: JobTicket, *, name: str | None = None) -> bool:
        """Start the job's execution. A failure is logged and reported, not raised: the job
        row exists and the caller gets its id either way (the start may have happened despite
        the error); the reconciler ends a job whose execution never started as NOT_SUBMITTED
        (nothing was sent upstream)."""
        try:
            sfn_client().start_execution(
                stateMachineArn=self._machine,
                name=name or ticket.job_id,
                input=json.dumps(ticket.to_state()),
            )
        except (ClientError, BotoCoreError) as exc:
            if isinstance(exc, ClientError) and error_code(exc) == "ExecutionAlreadyExists":
                return True
            logger.exception("could not start the job's workflow; the reconciler will end it")
            metrics.add_metric(name="WorkflowStartFailures", unit="Count", value=1)
            return False
        return True

    def execution_arn(self, name: str) -> str:
        return self._machine.replace(":stateMachine:", ":execution:", 1) + f":{name}"

    def status(self, name: str) -> str | None:
        """RUNNING / SUCCEEDED / FAILED / TIMED_OUT / ABORTED, or None if it never started."""
        try:
            described = sfn_client().describe_execution(executionArn=self.execution_arn(name))
        except ClientError as exc:
            if error_code(exc) == "ExecutionDoesNotExist":
                return None
            raise
        return str(described["status"])

    def may_be_running(self, job_id: str, *, quiet_since: datetime, now: datetime) -> bool:
        """Whether an execution of the job may still be running. Express: only within an
        execution's lifetime of `quiet_since`, the last moment one could have started (the
        job's deadline, or its last resume)."""
        if self._express:
            return now < quiet_since + EXPRESS_LIFETIME + EXPRESS_LIFETIME_MARGIN
        return any(self.status(name) == "RUNNING" for name in self.names_of(job_id))

    def resume(self, ticket: JobTicket, *, now: datetime) -> bool:
        """Start a stalled job's workflow again. Standard: under the first of its names that
        never ran (False if both did); Express: under a new name each time."""
        if self._express:
            return self.start(ticket, name=f"{ticket.job_id}{RESUME_SUFFIX}-{int(now.timestamp())}")
        for name in self.names_of(ticket.job_id):
            if self.status(name) is None:
                return self.start(ticket, name=name)
        return False

    def stop(self, job_id: str, *, cause: str) -> None:
        """Stop the job's executions (its own and a resumed one), whichever run. Express
        executions cannot be stopped: they stop themselves (the job row is no longer PENDING)."""
        if self._express:
            return
        for name in self.names_of(job_id):
            try:
                sfn_client().stop_execution(
                    executionArn=self.execution_arn(name), error="CANCELLED", cause=cause
                )
            except ClientError as exc:
                if error_code(exc) not in ("ExecutionDoesNotExist", "ExecutionNotRunning"):
                    raise

    @staticmethod
    def names_of(job_id: str) -> tuple[str, str]:
        """The job's execution names: its own, and the one the reconciler resumes it under."""
        return job_id, f"{job_id}{RESUME_SUFFIX}"
