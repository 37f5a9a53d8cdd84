"""The Step Functions payloads: the job ticket passed from state to state, failures, stored
images."""

from __future__ import annotations

from typing import Any

from pydantic import (
    AwareDatetime,
    ConfigDict,
    Field,
)

from imagegateway.domain.base import GatewayModel, JobStatus
from imagegateway.domain.image_requests import MAX_SAMPLES

# --- Step Functions payloads ----------------------------------------------------------------


class Failure(GatewayModel):
    code: str
    message: str


class CaughtError(GatewayModel):
    """What a state's Catch writes at its ResultPath."""

    model_config = ConfigDict(populate_by_name=True)

    error: str = Field(alias="Error")
    cause: str = Field(default="", alias="Cause")


class JobTicket(GatewayModel):
    """The workflow's state, passed from state to state: the execution input and the loop body."""

    job_id: str
    # A secret the job row holds too: a task acts only on a ticket whose token matches, so an
    # execution started by anyone but the gateway (or with a tampered input) changes nothing.
    run_token: str = Field(min_length=16, repr=False)
    upstream_id: str | None = None
    status: JobStatus
    download_urls: list[str] = Field(default_factory=list)
    expected_images: int = Field(default=1, ge=1, le=MAX_SAMPLES)
    submit_attempts: int = 0
    polls: int = 0
    wait_seconds: int = Field(ge=1)
    deadline_at: AwareDatetime
    deadline_passed: bool = False
    upstream_completed_at: AwareDatetime | None = None
    # When the last status check that saw PENDING was sent: a job then seen done finished at
    # most this long before (its detection delay, a metric), and not before it (the learned
    # sample's lower bound), even across executions and hand-overs.
    last_pending_at: AwareDatetime | None = None
    # Why the job is failing, once: a failure a state decided (code and message), or the error
    # a Catch caught (Error and Cause), which RecordFailure turns into a code and a message.
    failure: Failure | CaughtError | None = None
    # Express executions only: when this execution's first task ran (the hand-over clock), and
    # whether the job must go on in a new execution (the 5-minute limit is near).
    execution_started_at: AwareDatetime | None = None
    hand_over: bool = False
    hand_overs: int = 0
    # A submit the upstream put off (429, unreachable) is not tried again before this.
    submit_not_before: AwareDatetime | None = None
    # The predicted checks (domain.upstream_durations), for a shape the gateway has learned:
    # the next status check is not sent before `next_check_at` (the Wait state waits the whole
    # seconds, the check function the rest), and until `expected_done_at` the check after a
    # PENDING answer comes at that time rather than a second later.
    next_check_at: AwareDatetime | None = None
    expected_done_at: AwareDatetime | None = None

    def to_state(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)

    def handed_over(self) -> JobTicket:
        """The ticket a new execution goes on with (its first task starts the clock again)."""
        return self.model_copy(
            update={
                "hand_over": True,
                "execution_started_at": None,
                "hand_overs": self.hand_overs + 1,
            }
        )


MAX_REFERENCE_CHARS = 256
MAX_TASK_TOKEN_CHARS = 2048  # Step Functions' own bound on a task token


class StoredImage(GatewayModel):
    index: int
    key: str
    content_type: str
    size: int
    sha256: str


class StoredImages(GatewayModel):
    job_id: str
    images: list[StoredImage]
