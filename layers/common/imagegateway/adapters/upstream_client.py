"""The imagepipeline.io client: one POST per job, retried GETs, typed answers and errors.

A submit POST is never sent twice once it may have reached the upstream (a second POST is a
second charge): only connection attempts that provably sent nothing are retried, and every
answer that does not prove the upstream refused the job (a 5xx from a load balancer that may
sit in front of an origin that took it, a 2xx without an id or without JSON, a timeout after
sending) is an `UpstreamOutcomeUnknownError`. Status GETs are retried with backoff on
connection errors, 429 and 5xx, inside the invocation's time budget; a Retry-After longer than
that becomes an `UpstreamRateLimitedError` so the state machine does the waiting. Redirects are
never followed: the API key goes to the configured upstream only.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aws_lambda_powertools.shared.lazy_import import LazyLoader
from pydantic import ValidationError
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

from imagegateway.adapters.http_retry import RETRYABLE_STATUSES, BudgetedRetry, retry_after_seconds
from imagegateway.adapters.upstream_key import upstream_api_key
from imagegateway.domain.base import JobKind, JobStatus
from imagegateway.domain.errors import (
    UpstreamAuthError,
    UpstreamOutcomeUnknownError,
    UpstreamProtocolError,
    UpstreamRateLimitedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from imagegateway.domain.image_requests import UpstreamAnswer
from imagegateway.platform.observability import logger
from imagegateway.platform.settings import Settings, get_settings
from imagegateway.platform.time_budget import read_timeout_within_budget

if TYPE_CHECKING:
    import requests
else:
    # Imported at the first upstream call, not with this module: the submit functions import
    # it to read the key, and requests (its cookie, charset and urllib modules) is a cold
    # start's tens of milliseconds.
    requests = LazyLoader("requests", globals(), "requests")

# The upstream's answers that prove it did not take the job (nothing charged).
REFUSED_STATUSES = frozenset({429})
# A Retry-After up to this is slept inside the function; a longer one becomes a Wait state.
MAX_INLINE_RETRY_AFTER_SECONDS = 5


def _adapter(retry: BudgetedRetry) -> requests.adapters.HTTPAdapter:
    return requests.adapters.HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=8)


def _session(retry: BudgetedRetry) -> requests.Session:
    session = requests.Session()
    # Never a proxy or a .netrc from the environment: the key goes to the upstream only.
    session.trust_env = False
    session.mount("https://", _adapter(retry))
    session.mount("http://", _adapter(retry))
    return session


@lru_cache(maxsize=2)
def submit_session(connect_seconds: float = 3.05) -> requests.Session:
    # Only connect errors (nothing was sent) are retried: POST is not an allowed method, and
    # read and status retries are off, so a POST that may have arrived is never sent again.
    return _session(
        BudgetedRetry(
            total=2,
            connect=2,
            read=0,
            status=0,
            other=0,
            redirect=0,
            allowed_methods=frozenset({"GET"}),
            raise_on_status=False,
            raise_on_redirect=False,
            attempt_seconds=connect_seconds,
        )
    )


@lru_cache(maxsize=2)
def retrying_get_session(attempt_seconds: float = 13.05) -> requests.Session:
    """`attempt_seconds`: the connect plus read timeouts of one attempt."""
    return _session(
        BudgetedRetry.for_idempotent_get(
            status_retries=4,
            retry_after_max=MAX_INLINE_RETRY_AFTER_SECONDS,
            attempt_seconds=attempt_seconds,
        )
    )


def _nothing_was_sent(exc: requests.ConnectionError) -> bool:
    reason: Any = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, NewConnectionError | ConnectTimeoutError)


def _retry_after(response: requests.Response) -> float | None:
    return retry_after_seconds(response.headers.get("Retry-After"))


class UpstreamClient:
    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings or get_settings()

    def _headers(self) -> dict[str, str]:
        return {"API-Key": upstream_api_key(self._settings), "Accept": "application/json"}

    def _get_session(self) -> requests.Session:
        settings = self._settings
        return retrying_get_session(
            settings.upstream_connect_timeout_seconds + settings.upstream_read_timeout_seconds
        )

    def _timeout(self, read_seconds: float) -> tuple[float, float]:
        """(connect, read) timeouts that fit in the invocation's remaining time."""
        connect = self._settings.upstream_connect_timeout_seconds
        read = read_timeout_within_budget(read_seconds, connect)
        if read is None:
            raise UpstreamUnavailableError("no time left in this invocation to call the upstream")
        return connect, read

    def submit(self, kind: JobKind, body: dict[str, Any]) -> UpstreamAnswer:
        """POST the job once, to its kind's route. A FAILURE answer is returned, not raised: it
        is the result."""
        url = self._settings.upstream_base + kind.submit_path
        headers = self._headers()
        timeout = self._timeout(self._settings.upstream_submit_read_timeout_seconds)
        try:
            session = submit_session(self._settings.upstream_connect_timeout_seconds)
            response = session.post(
                url, json=body, headers=headers, timeout=timeout, allow_redirects=False
            )
        except requests.ConnectTimeout as exc:
            raise UpstreamUnavailableError("could not connect to the upstream in time") from exc
        except requests.ReadTimeout as exc:
            raise UpstreamTimeoutError(
                "the upstream did not answer in time; it may have accepted the job"
            ) from exc
        except requests.ConnectionError as exc:
            if _nothing_was_sent(exc):
                raise UpstreamUnavailableError("could not connect to the upstream") from exc
            raise UpstreamTimeoutError(
                "the upstream connection broke after the request was sent; "
                "it may have accepted the job"
            ) from exc
        except requests.RequestException as exc:
            raise UpstreamOutcomeUnknownError(
                f"the upstream call failed after sending ({type(exc).__name__}); "
                "it may have accepted the job"
            ) from exc
        return self._submit_answer(response)

    def _submit_answer(self, response: requests.Response) -> UpstreamAnswer:
        code = response.status_code
        logger.debug("upstream answered", extra={"action": "submit", "http_status": code})
        if code in (401, 403):
            raise UpstreamAuthError(f"the upstream refused the gateway's API key (HTTP {code})")
        if code in REFUSED_STATUSES:
            raise UpstreamRateLimitedError(
                f"the upstream is rate limiting submits (HTTP {code})",
                retry_after=_retry_after(response),
            )
        may_hold = "; it may have accepted (and charged) the job"
        if code >= 500 or 300 <= code < 400:
            raise UpstreamOutcomeUnknownError(
                f"the upstream answered HTTP {code} to submit{may_hold}"
            )
        try:
            answer = UpstreamAnswer.model_validate(response.json())
        except (ValueError, ValidationError) as exc:
            if code >= 400:
                raise UpstreamProtocolError(f"the upstream refused the job (HTTP {code})") from exc
            raise UpstreamOutcomeUnknownError(
                f"the upstream's submit answer (HTTP {code}) is not its documented JSON{may_hold}"
            ) from exc
        if answer.status is JobStatus.FAILURE:
            if not answer.error:
                answer.error = f"the upstream refused the job (HTTP {code}) without a message"
            return answer
        if code >= 400:
            raise UpstreamProtocolError(f"the upstream answered HTTP {code} to submit")
        if not answer.id:
            raise UpstreamOutcomeUnknownError(
                f"the upstream answered {answer.status} without the job's id{may_hold}"
            )
        return answer

    def status(self, kind: JobKind, upstream_id: str) -> UpstreamAnswer:
        url = self._settings.upstream_base + kind.status_path(quote(upstream_id, safe=""))
        headers = self._headers()
        timeout = self._timeout(self._settings.upstream_read_timeout_seconds)
        try:
            response = self._get_session().get(
                url, headers=headers, timeout=timeout, allow_redirects=False
            )
        except requests.RequestException as exc:
            raise UpstreamUnavailableError(f"status check failed: {type(exc).__name__}") from exc
        return self._status_answer(response)

    def _status_answer(self, response: requests.Response) -> UpstreamAnswer:
        code = response.status_code
        logger.debug("upstream answered", extra={"action": "status", "http_status": code})
        if code in (401, 403):
            raise UpstreamAuthError(f"the upstream refused the gateway's API key (HTTP {code})")
        if code in RETRYABLE_STATUSES:
            retry_after = _retry_after(response)
            if retry_after is not None:
                raise UpstreamRateLimitedError(
                    f"the upstream asked to wait {retry_after:.0f} s (HTTP {code})",
                    retry_after=retry_after,
                )
            raise UpstreamUnavailableError(f"the upstream answered HTTP {code} to status")
        if 300 <= code < 400:
            raise UpstreamProtocolError(f"the upstream answered a redirect (HTTP {code})")
        try:
            answer = UpstreamAnswer.model_validate(response.json())
        except (ValueError, ValidationError) as exc:
            if code >= 400:
                raise UpstreamProtocolError(f"the upstream answered HTTP {code} to status") from exc
            raise UpstreamProtocolError(
                "the upstream's status answer is not its documented JSON"
            ) from exc
        if code >= 400 and answer.status is not JobStatus.FAILURE:
            raise UpstreamProtocolError(f"the upstream answered HTTP {code} to status")
        if answer.status is JobStatus.FAILURE and not answer.error:
            answer.error = f"the upstream reported FAILURE (HTTP {code}) without a message"
        return answer
