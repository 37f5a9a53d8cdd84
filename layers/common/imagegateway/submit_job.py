"""Use case, HTTP: record a job and start its workflow. The caller's answer never waits on the
upstream: an upstream POST can take longer than API Gateway's 30 s, and a caller cut off without
a job id would submit again (and pay twice)."""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta
from typing import Any

from imagegateway.collaborators import Collaborators
from imagegateway.models import Callbacks, JobKind, JobStatus, JobTicket, JobView, samples_of
from imagegateway.observability import logger, metrics
from imagegateway.upstream import upstream_api_key


def new_job_id() -> str:
    """Unguessable (122 random bits) and valid as a Step Functions execution name."""
    return str(uuid.uuid4())


def record_job(
    kind: JobKind,
    body: dict[str, Any],
    *,
    owner: str,
    deps: Collaborators,
    callbacks: Callbacks | None = None,
) -> JobTicket:
    """The job row, and the ticket its workflow starts with. `body` is the upstream request,
    built once from the validated model; `callbacks` what the caller asked to be told at the
    end (a reference, a task token, a webhook)."""
    # A first deploy without a key: refused now (a 503, or a queued request kept for later),
    # and no stray job row.
    upstream_api_key(deps.settings)
    job_id = new_job_id()
    logger.append_keys(job_id=job_id)
    now = deps.clock()
    deadline_at = now + timedelta(seconds=deps.settings.job_deadline_seconds)
    run_token = secrets.token_urlsafe(24)
    deps.jobs.create(
        job_id=job_id,
        owner=owner,
        kind=kind,
        request=body,
        now=now,
        deadline_at=deadline_at,
        run_token=run_token,
        callbacks=callbacks,
    )
    metrics.add_metric(name="JobsAccepted", unit="Count", value=1)
    return JobTicket(
        job_id=job_id,
        run_token=run_token,
        status=JobStatus.PENDING,
        expected_images=samples_of(body),
        wait_seconds=1,
        deadline_at=deadline_at,
    )


def submit_job(
    kind: JobKind,
    body: dict[str, Any],
    *,
    owner: str,
    deps: Collaborators,
    callbacks: Callbacks | None = None,
) -> JobView:
    """HTTP: record the job and start its workflow, whose first task sends it upstream."""
    ticket = record_job(kind, body, owner=owner, deps=deps, callbacks=callbacks)
    deps.workflow.start(ticket)
    return JobView(status=JobStatus.PENDING, id=ticket.job_id)
