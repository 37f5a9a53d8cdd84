"""urllib3's Retry, bounded by the invocation's time budget.

A retry is attempted only if its wait plus one more attempt fits in what is left of the
invocation, and a `Retry-After` longer than `retry_after_max` (or than the budget) is not slept
here: the 429/503 answer is handed back, so the caller can turn it into a wait outside the
function (a Step Functions Wait state) instead of dying in `time.sleep`.
"""

from __future__ import annotations

from typing import Any, Self

from urllib3.exceptions import InvalidHeader, MaxRetryError
from urllib3.util.retry import Retry

from imagegateway.platform.time_budget import remaining_seconds

# Answers worth another attempt of an idempotent GET (status checks, image downloads).
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


class BudgetedRetry(Retry):
    """`attempt_seconds` is the longest one attempt can take (connect + read timeouts)."""

    def __init__(self, *args: Any, attempt_seconds: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.attempt_seconds = attempt_seconds

    @classmethod
    def for_idempotent_get(
        cls, *, status_retries: int, retry_after_max: float, attempt_seconds: float
    ) -> Self:
        """The policy of a GET that may be sent again (a status check, an image download):
        connection errors, read timeouts and RETRYABLE_STATUSES are retried with backoff,
        honouring a Retry-After up to `retry_after_max`; redirects are handed back, never
        followed."""
        return cls(
            total=5,
            connect=3,
            read=2,
            status=status_retries,
            other=0,
            redirect=0,
            backoff_factor=0.5,
            backoff_max=4,
            status_forcelist=RETRYABLE_STATUSES,
            allowed_methods=frozenset({"GET"}),
            respect_retry_after_header=True,
            retry_after_max=retry_after_max,
            raise_on_status=False,
            raise_on_redirect=False,
            attempt_seconds=attempt_seconds,
        )

    def new(self, **kw: Any) -> Self:
        kw.setdefault("attempt_seconds", self.attempt_seconds)
        return super().new(**kw)

    def increment(self, *args: Any, **kwargs: Any) -> Self:
        retry = super().increment(*args, **kwargs)
        response = kwargs.get("response") if "response" in kwargs else _arg(args, 2)
        wait = retry._planned_wait(response)
        if wait is None or wait + self.attempt_seconds > remaining_seconds():
            pool = kwargs.get("_pool") if "_pool" in kwargs else _arg(args, 4)
            url = kwargs.get("url") if "url" in kwargs else _arg(args, 1)
            error = kwargs.get("error") if "error" in kwargs else _arg(args, 3)
            raise MaxRetryError(pool, str(url or ""), error)  # type: ignore[arg-type]
        return retry

    def _planned_wait(self, response: Any) -> float | None:
        """What `sleep()` would wait before the next attempt; None if it should not wait."""
        if response is not None and self.respect_retry_after_header:
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            if retry_after is not None:
                return retry_after if retry_after <= self.retry_after_max else None
        return self.get_backoff_time()


def retry_after_seconds(header: str | None) -> float | None:
    """A Retry-After header (seconds or an HTTP date) in seconds, uncapped; None if absent or
    unreadable (urllib3's own parser caps the value at `retry_after_max`)."""
    if not header:
        return None
    try:
        return Retry(retry_after_max=2**31).parse_retry_after(header)
    except InvalidHeader:
        return None


def _arg(args: tuple[Any, ...], index: int) -> Any:
    return args[index] if len(args) > index else None
