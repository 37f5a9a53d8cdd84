"""Use case, every entry's way in: accept a request (serve it from the caller's earlier identical
fixed-seed job, or record it as a job), then, over HTTP, start its workflow. The caller's answer
never waits on the upstream: an upstream POST can take longer than API Gateway's 30 s, and a
caller cut off without a job id would submit again (and pay twice).

The prompts' CLIP tokens are measured once, by the entry point, and passed down (`tokens`)."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from imagegateway.domain.base import JobKind, JobStatus
from imagegateway.domain.image_requests import samples_of
from imagegateway.domain.prompt_tokens import PromptTokens
from imagegateway.domain.records import Callbacks
from imagegateway.domain.tickets import JobTicket
from imagegateway.domain.upstream_durations import job_shape
from imagegateway.domain.views import JobView
from imagegateway.platform.observability import logger, metrics
from imagegateway.use_cases.ports import Ports
from imagegateway.use_cases.result_cache import served_from_cache
from imagegateway.use_cases.start_job import start_job


def new_job_id() -> str:
    """Unguessable (122 random bits) and valid as a Step Functions execution name."""
    return str(uuid.uuid4())


def record_job(
    kind: JobKind,
    body: dict[str, Any],
    *,
    owner: str,
    deps: Ports,
    tokens: PromptTokens,
    callbacks: Callbacks | None = None,
) -> JobTicket:
    """The job row, and the ticket its workflow starts with. `body` is the upstream request,
    built once from the validated model; `callbacks` what the caller asked to be told at the
    end (a reference, a task token, a webhook); `tokens` its prompts' CLIP tokens, kept on the
    row for the caller's view."""
    # A first deploy without a key: refused now (a 503, or a queued request kept for later),
    # and no stray job row.
    deps.require_upstream_key()
    now = deps.clock()
    # The caller's daily budget, before anything is stored or sent (BudgetExceededError: a 429,
    # or a Failed event); a job that ends without being sent gives its images back.
    deps.usage.reserve(owner, samples_of(body), now=now)
    job_id = new_job_id()
    logger.append_keys(job_id=job_id)
    deadline_at = now + timedelta(seconds=deps.settings.job_deadline_seconds)
    run_token = secrets.token_urlsafe(24)
    try:
        deps.jobs.create(
            job_id=job_id,
            owner=owner,
            kind=kind,
            request=body,
            now=now,
            deadline_at=deadline_at,
            run_token=run_token,
            callbacks=callbacks,
            tokens=tokens.counts,
            warnings=tokens.warnings,
        )
    except Exception:
        # No job: its images must not count against the caller's day.
        deps.usage.give_back(owner, samples_of(body), accepted_at=now)
        raise
    metrics.add_metric(name="JobsAccepted", unit="Count", value=1)
    if tokens.overflows:
        metrics.add_metric(name="PromptsOverTokenWindow", unit="Count", value=1)
    return JobTicket(
        job_id=job_id,
        run_token=run_token,
        status=JobStatus.PENDING,
        expected_images=samples_of(body),
        wait_seconds=1,
        deadline_at=deadline_at,
    )


def served_job(
    kind: JobKind,
    body: dict[str, Any],
    *,
    owner: str,
    deps: Ports,
    tokens: PromptTokens,
    callbacks: Callbacks | None = None,
) -> JobView | None:
    """A new job served from the caller's earlier identical fixed-seed job (SUCCESS, no upstream
    call, not counted against the budget), or None."""
    job_id = new_job_id()
    logger.append_keys(job_id=job_id)  # the cache's own log lines name the new job
    record = served_from_cache(
        job_id, kind, body, owner=owner, deps=deps, callbacks=callbacks, tokens=tokens
    )
    if record is None:
        logger.remove_keys(["job_id"])  # no such job: record_job names the one it makes
        return None
    return JobView(status=JobStatus.SUCCESS, id=job_id, cached_from=record.cached_from)


@dataclass(frozen=True)
class Accepted:
    """An accepted request: the caller's view, and the ticket of a recorded job whose workflow
    is still to start (None: served, SUCCESS already)."""

    view: JobView
    ticket: JobTicket | None


def accept_job(
    kind: JobKind,
    body: dict[str, Any],
    *,
    owner: str,
    deps: Ports,
    tokens: PromptTokens,
    callbacks: Callbacks | None = None,
    use_cache: bool = True,
) -> Accepted:
    """Serve a fixed-seed request the caller already ran (when `use_cache`), else record it as
    a PENDING job. Every entry (HTTP, the queue, an Idempotency-Key's first request) goes
    through here: the one place that chooses between the two."""
    if use_cache and (
        served := served_job(kind, body, owner=owner, deps=deps, callbacks=callbacks, tokens=tokens)
    ):
        return Accepted(served, None)
    ticket = record_job(kind, body, owner=owner, deps=deps, callbacks=callbacks, tokens=tokens)
    view = JobView(
        status=JobStatus.PENDING,
        id=ticket.job_id,
        tokens=tokens.counts,
        warnings=tokens.warnings or None,
    )
    return Accepted(_with_estimate(view, kind, body, deps), ticket)


def _with_estimate(view: JobView, kind: JobKind, body: dict[str, Any], deps: Ports) -> JobView:
    """The 202's ETA: when a job of this shape should be done if the upstream took it now
    (queueing before the upstream accepts it comes on top). Never fails the request."""
    estimate = None
    if deps.settings.predicted_first_check:
        try:
            now = deps.clock()
            estimate = deps.durations.estimate(job_shape(kind, body), now=now)
        except Exception:
            logger.exception("could not read the upstream's durations; no estimate")
    if estimate is None:
        return view.model_copy(update={"estimate": "none"})
    return view.model_copy(
        update={"estimated_done_at": estimate.done_at(now), "estimate": "learned"}
    )


def submit_job(
    kind: JobKind,
    body: dict[str, Any],
    *,
    owner: str,
    deps: Ports,
    tokens: PromptTokens,
    callbacks: Callbacks | None = None,
    use_cache: bool = True,
) -> JobView:
    """HTTP: accept the request and start a recorded job's workflow, whose first task sends it
    upstream."""
    accepted = accept_job(
        kind,
        body,
        owner=owner,
        deps=deps,
        tokens=tokens,
        callbacks=callbacks,
        use_cache=use_cache,
    )
    if accepted.ticket is not None:
        start_job(accepted.ticket, deps)
    return accepted.view
