"""The job row: what a job is, its callbacks and its prompt token counts."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from pydantic import (
    AwareDatetime,
    Field,
)

from imagegateway.domain.base import GatewayModel, JobKind, JobStatus
from imagegateway.domain.errors import InvalidRequestError
from imagegateway.domain.image_urls import ImageUrl
from imagegateway.domain.tickets import MAX_REFERENCE_CHARS, MAX_TASK_TOKEN_CHARS, StoredImage

# --- the job row and the caller's view -------------------------------------------------------


class Callbacks(GatewayModel):
    """What a job's caller asked to be told when it ends, kept on its job row: a `reference` echoed
    in every completion, a Step Functions task token to answer, a webhook to deliver."""

    reference: str | None = Field(default=None, min_length=1, max_length=MAX_REFERENCE_CHARS)
    task_token: str | None = Field(
        default=None, min_length=1, max_length=MAX_TASK_TOKEN_CHARS, repr=False
    )
    webhook_url: ImageUrl | None = None


def one_webhook(
    given: str | None, in_body: str | None, *, body_field: str = "webhook"
) -> str | None:
    """A job's webhook: the one its caller gave the gateway (`webhook_url`) or the body's
    `webhook` (the upstream's family field, which the gateway serves itself). Both only when
    they agree: InvalidRequestError naming `body_field` otherwise."""
    if given and in_body and given != in_body:
        message = "differs from webhook_url; give the job one webhook"
        raise InvalidRequestError(f"{body_field}: {message}", details=[(body_field, message)])
    return given or in_body


class TokenCounts(GatewayModel):
    """The CLIP tokens of the prompts, and how many of each SD 1.5 reads (`limit`): the model
    silently drops the tokens past it."""

    prompt: int = Field(description="Tokens of `prompt`, as SD 1.5's CLIP tokenizer counts them.")
    negative_prompt: int = Field(description="Tokens of `negative_prompt` (0 without one).")
    limit: int = Field(description="The tokens the model reads of each (75).")


class JobRecord(GatewayModel):
    """One row of the jobs table."""

    job_id: str
    owner: str
    # Rows written before the other kinds existed are text2image jobs.
    kind: JobKind = JobKind.TEXT2IMAGE
    status: JobStatus
    request: dict[str, Any]
    upstream_id: str | None = None
    run_token: str | None = Field(default=None, repr=False)
    # Set (conditionally, once) just before the upstream POST: a re-run that finds it knows the
    # POST may have been sent, and never sends it again.
    submit_started_at: AwareDatetime | None = None
    # Set by the first claim and never removed: a workflow run reached the job (a job without
    # it, some time after its row was written, was never started: the reconciler starts it).
    workflow_began_at: AwareDatetime | None = None
    reconcile_failures: int = 0
    created_at: AwareDatetime
    updated_at: AwareDatetime
    deadline_at: AwareDatetime
    accepted_at: AwareDatetime | None = None
    # When the upstream should be done, from the jobs of its shape (domain.upstream_durations);
    # none for a shape not learned yet. Written with accepted_at, read by the caller's view.
    estimated_done_at: AwareDatetime | None = None
    upstream_completed_at: AwareDatetime | None = None
    completed_at: AwareDatetime | None = None
    images: list[StoredImage] = Field(default_factory=list)
    error_code: str | None = None
    error_message: str | None = None
    callbacks: Callbacks | None = None
    # The callbacks of later requests folded into this job (the same owner, idempotency key and
    # body, each with callbacks of its own): told when the job ends, like `callbacks`.
    also_tell: list[Callbacks] = Field(default_factory=list)
    # What of the job's end its callers have been told (`domain.tellings` names each event,
    # task answer and webhook); a job whose ending is not all told yet is told again later.
    told: frozenset[str] | None = None
    # Counted when the job was recorded (absent on rows written before counting existed).
    tokens: TokenCounts | None = None
    warnings: list[str] | None = None
    # Served from this earlier job's images (a fixed-seed request its caller already ran).
    cached_from: str | None = None
    expires_at: int

    @classmethod
    def pending(
        cls,
        *,
        job_id: str,
        owner: str,
        kind: JobKind,
        request: dict[str, Any],
        now: datetime,
        deadline_at: datetime,
        run_token: str,
        expires_at: int,
        callbacks: Callbacks | None = None,
        tokens: TokenCounts | None = None,
        warnings: list[str] | None = None,
    ) -> JobRecord:
        """A new job's row: PENDING until its workflow ends it."""
        return cls(
            job_id=job_id,
            owner=owner,
            kind=kind,
            status=JobStatus.PENDING,
            request=request,
            run_token=run_token,
            callbacks=callbacks,
            tokens=tokens,
            warnings=warnings or None,
            created_at=now,
            updated_at=now,
            deadline_at=deadline_at,
            expires_at=expires_at,
        )

    @classmethod
    def served(
        cls,
        *,
        job_id: str,
        owner: str,
        kind: JobKind,
        request: dict[str, Any],
        now: datetime,
        original: JobRecord,
        images: list[StoredImage],
        expires_at: int,
        callbacks: Callbacks | None = None,
        tokens: TokenCounts | None = None,
        warnings: list[str] | None = None,
    ) -> JobRecord:
        """A job born SUCCESS, served from `original`'s images (copied under its own keys)."""
        return cls(
            job_id=job_id,
            owner=owner,
            kind=kind,
            status=JobStatus.SUCCESS,
            request=request,
            callbacks=callbacks,
            tokens=tokens,
            warnings=warnings or None,
            images=images,
            cached_from=original.job_id,
            created_at=now,
            updated_at=now,
            completed_at=now,
            deadline_at=now,
            expires_at=expires_at,
        )


def cache_key(owner: str, kind: JobKind, body: dict[str, Any]) -> str | None:
    """The request's cache key, or None for a request the upstream would seed at random."""
    if body.get("seed") is None:
        return None
    text = json.dumps(
        {"owner": owner, "kind": kind.value, "request": body},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
