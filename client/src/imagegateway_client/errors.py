"""What the client raises: every exception is an `ImageGatewayError` whose message says what
happened and what to do about it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imagegateway_client.models import Job


class ImageGatewayError(Exception):
    """Anything the client could not do."""


class GatewayUnreachableError(ImageGatewayError):
    """No HTTP answer: connection refused, DNS, TLS, or a timeout."""


class GatewayError(ImageGatewayError):
    """The gateway answered with an error: its HTTP status and JSON error body
    (`{"status": "FAILURE", "error", "error_code", "details": [{"field", "message"}]}`)."""

    def __init__(
        self,
        status: int,
        error: str,
        *,
        error_code: str | None = None,
        details: Sequence[Mapping[str, Any]] = (),
        job_id: str | None = None,
        retry_after: float | None = None,
        hint: str = "",
        body: Any = None,
    ) -> None:
        self.status = status
        self.error = error
        self.error_code = error_code
        self.details: list[dict[str, Any]] = [dict(detail) for detail in details]
        self.job_id = job_id
        self.retry_after = retry_after
        self.hint = hint
        self.body = body
        super().__init__(self._message())

    def _message(self) -> str:
        code = f" {self.error_code}" if self.error_code else ""
        lines = [f"the gateway answered {self.status}{code}: {self.error}"]
        for detail in self.details:
            message = str(detail.get("message", ""))
            if message not in self.error:  # not already said by the error's one line
                lines.append(f"  {detail.get('field', '?')}: {message}")
        if self.retry_after is not None:
            lines.append(f"  retry after {self.retry_after:g} s")
        if self.hint:
            lines.append(self.hint)
        return "\n".join(lines)


class AuthenticationError(GatewayError):
    """401 / 403: the gateway refused the request's credentials."""


class JobNotFoundError(GatewayError):
    """404 for a job: unknown, another caller's, or asked for on another kind's route."""


class JobFinishedError(GatewayError):
    """409 from cancel: the job had already ended and was left as it was."""


class JobFailedError(ImageGatewayError):
    """The job ended FAILURE (`job.error_code`, `job.error`)."""

    def __init__(self, job: Job) -> None:
        self.job = job
        code = f"{job.error_code}: " if job.error_code else ""
        super().__init__(f"job {job.id} ended FAILURE: {code}{job.error or 'no reason given'}")


class WaitTimeoutError(ImageGatewayError):
    """The job was still PENDING when the wait ran out; it keeps running on the gateway."""

    def __init__(self, job: Job, timeout: float) -> None:
        self.job = job
        self.timeout = timeout
        kind = f" --kind {job.kind}" if job.kind else ""
        super().__init__(
            f"job {job.id} was still {job.status} after {timeout:g} s; it keeps running: "
            f"follow it with `imagegateway status {job.id}{kind}`"
        )


class ImageCheckError(ImageGatewayError):
    """A downloaded image is not what the gateway reported (size or sha256), or could not be
    fetched through its presigned URL."""
