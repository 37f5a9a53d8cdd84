"""The Step Functions adapter: start a job's execution, and ask how one ended."""

from __future__ import annotations

import json

from botocore.exceptions import BotoCoreError, ClientError

from imagegateway.aws import error_code, sfn_client
from imagegateway.models import JobTicket
from imagegateway.observability import logger, metrics

RESUME_SUFFIX = "-resume"


class Workflow:
    """Executions of the job state machine, each named after its job (so a second start can
    never fork a job: Step Functions refuses a second execution of one name)."""

    def __init__(self, state_machine_arn: str) -> None:
        self._machine = state_machine_arn

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

    def stop(self, job_id: str, *, cause: str) -> None:
        """Stop the job's executions (its own and a resumed one), whichever run."""
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
