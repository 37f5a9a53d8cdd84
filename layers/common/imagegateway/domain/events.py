"""Event-driven entries and completion (contract: docs/design.md): the envelope and the
completion detail."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import (
    ConfigDict,
    Field,
)

from imagegateway.domain.base import GatewayModel, JobKind, JobStatus
from imagegateway.domain.records import Callbacks
from imagegateway.domain.views import ErrorDetail, Timings

# --- event-driven entries and completion (contract: docs/design.md) ---------------------------

EVENT_SOURCE = "imagepipeline-gateway"


class DetailType(StrEnum):
    REQUESTED = "Image Generation Requested"
    SUCCEEDED = "Image Generation Succeeded"
    FAILED = "Image Generation Failed"


class Envelope(Callbacks):
    """A request from a queue or an event bus. Only `request` is required. The request itself is
    validated against its kind's model separately, so its errors name `request.<field>`."""

    model_config = ConfigDict(extra="forbid")

    kind: JobKind = JobKind.TEXT2IMAGE
    request: dict[str, Any]
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=255)
    # False: a fixed-seed request already run is generated again, not served from its images.
    cache: bool = True


class CompletedImage(GatewayModel):
    bucket: str
    key: str
    url: str
    content_type: str
    size: int
    sha256: str


class CompletionDetail(GatewayModel):
    """The `detail` of a completion event, the output of an answered task token and the `data`
    of a webhook. Fields that do not apply are left out (dumped with exclude_none)."""

    job_id: str | None = None
    kind: JobKind | None = None
    status: JobStatus
    reference: str | None = None
    images: list[CompletedImage] | None = None
    error: str | None = None
    error_code: str | None = None
    # Failures only: whether the same request, sent again later, may succeed (per error_code).
    retryable: bool | None = None
    details: list[ErrorDetail] | None = None
    timings: Timings | None = None

    @property
    def detail_type(self) -> DetailType:
        return DetailType.SUCCEEDED if self.status is JobStatus.SUCCESS else DetailType.FAILED


class Completion(GatewayModel):
    """A job's last task's output: PublishCompletion puts it on the bus as it is."""

    detail_type: DetailType
    detail: CompletionDetail

    @classmethod
    def of(cls, detail: CompletionDetail) -> Completion:
        return cls(detail_type=detail.detail_type, detail=detail)
