"""What a caller reads: a job's view, a page of jobs, the error answer."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import (
    Field,
)

from imagegateway.domain.base import GatewayModel, JobKind, JobStatus
from imagegateway.domain.records import JobRecord, TokenCounts


class ImageView(GatewayModel):
    url: str
    content_type: str
    size: int
    sha256: str


class Timings(GatewayModel):
    created_at: datetime
    accepted_at: datetime | None = None
    upstream_completed_at: datetime | None = None
    completed_at: datetime | None = None
    queued_seconds: float | None = Field(
        default=None, description="From the request until the upstream accepted the job."
    )
    upstream_seconds: float | None = Field(
        default=None, description="From acceptance until the upstream reported SUCCESS."
    )
    copy_seconds: float | None = Field(
        default=None, description="From the upstream's SUCCESS until the images were in S3."
    )
    total_seconds: float | None = None


class JobView(GatewayModel):
    """The upstream's status answer, plus the gateway's richer fields."""

    status: JobStatus
    id: str
    kind: JobKind | None = None
    download_urls: list[str] | None = None
    error: str | None = None
    error_code: str | None = None
    retryable: bool | None = Field(
        default=None,
        description="FAILURE only: whether the same request, sent again later, may succeed "
        "(decided per error_code).",
    )
    images: list[ImageView] | None = None
    timings: Timings | None = None
    tokens: TokenCounts | None = None
    warnings: list[str] | None = Field(
        default=None,
        description="What the caller should know about the job, e.g. a prompt over the tokens "
        "the model reads, with the words it ignores.",
    )
    cached_from: str | None = Field(
        default=None,
        description="Served from this earlier job's images, without an upstream call: the "
        "caller already ran this fixed-seed request (`Cache-Control: no-cache` forces a new one).",
    )
    request: dict[str, Any] | None = Field(
        default=None,
        description="The job's request as the gateway sends it upstream: the caller's own "
        "body, less what only the gateway reads (a webhook, say).",
    )
    estimated_done_at: datetime | None = Field(
        default=None,
        description="PENDING only: when the upstream should be done with the job, learned from "
        "the gateway's recent jobs of the same shape (kind, model, steps, size x samples, hires, "
        "upscale, LoRAs, ControlNets). An estimate: the job may end earlier or later.",
    )
    estimate: Literal["learned", "none"] | None = Field(
        default=None,
        description="PENDING only: `learned` when `estimated_done_at` is given; `none` when there "
        "is no estimate (a shape the gateway has not seen finish a few times lately, one whose "
        "times vary too much, or a job the upstream has not accepted yet).",
    )


class JobList(GatewayModel):
    """One page of a caller's jobs, newest first; `next_cursor` fetches the next page."""

    jobs: list[JobView]
    next_cursor: str | None = None


class ErrorDetail(GatewayModel):
    field: str
    message: str


def field_name(location: tuple[Any, ...], *, prefix: str = "") -> str:
    """A validation error's location as a caller reads it: `loras[1].weight`, `webhook_url`;
    `body` and `query` are dropped (the body is the request, a query parameter is its name)."""
    name = prefix
    for part in (part for part in location if part not in ("body", "query")):
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"


def error_details(errors: list[Any], *, prefix: str = "") -> list[ErrorDetail]:
    """Pydantic's errors (`ValidationError.errors()`) as the contract's details."""
    return [
        ErrorDetail(
            field=field_name(tuple(err.get("loc", ())), prefix=prefix),
            message=str(err.get("msg", "")),
        )
        for err in errors
    ]


class ErrorResponse(GatewayModel):
    """The contract's error body for 400 / 404 / 409 / 413 / 415 / 422 / 429 / 5xx answers."""

    status: JobStatus = JobStatus.FAILURE
    error: str
    error_code: str | None = None
    # Every error answer says it, whether or not it shows a code (decided per code).
    retryable: bool | None = None
    details: list[ErrorDetail] = Field(default_factory=list)
    id: str | None = None
    # BUDGET_EXCEEDED: when the caller's daily budget starts again.
    resets_at: datetime | None = None


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return round((end - start).total_seconds(), 3) if start and end else None


def timings_of(record: JobRecord) -> Timings:
    return Timings(
        created_at=record.created_at,
        accepted_at=record.accepted_at,
        upstream_completed_at=record.upstream_completed_at,
        completed_at=record.completed_at,
        queued_seconds=_seconds(record.created_at, record.accepted_at),
        upstream_seconds=_seconds(
            record.accepted_at or record.created_at, record.upstream_completed_at
        ),
        copy_seconds=_seconds(record.upstream_completed_at, record.completed_at),
        total_seconds=_seconds(record.created_at, record.completed_at),
    )
