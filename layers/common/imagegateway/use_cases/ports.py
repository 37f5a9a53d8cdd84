"""The ports: what the use cases need from the world, as protocols. The adapters satisfy them
structurally (`entrypoints.wiring.Collaborators` builds those), unit tests with in-memory fakes
(`tests/support/fakes.py`); no use case names an adapter.

Each protocol holds exactly the methods the use cases and the entry points call, with the
adapters' signatures. The domain types are imported for the type checker only: a function's cold
start loads no more than it did before the ports existed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from imagegateway.domain.base import JobKind, JobStatus
    from imagegateway.domain.events import Completion
    from imagegateway.domain.image_requests import UpstreamAnswer
    from imagegateway.domain.records import Callbacks, JobRecord, TokenCounts
    from imagegateway.domain.tickets import JobTicket, StoredImage
    from imagegateway.domain.upstream_durations import DurationEstimate, DurationSample
    from imagegateway.domain.usage import Usage
    from imagegateway.platform.settings import Settings


@runtime_checkable
class JobStore(Protocol):
    """The jobs' rows, the source of truth. Every `mark_*` returning bool is conditional: False
    when its condition did not hold (the job had ended otherwise), nothing written."""

    def create(
        self,
        *,
        job_id: str,
        owner: str,
        kind: JobKind,
        request: dict[str, Any],
        now: datetime,
        deadline_at: datetime,
        run_token: str,
        callbacks: Callbacks | None = None,
        tokens: TokenCounts | None = None,
        warnings: list[str] | None = None,
    ) -> JobRecord: ...

    def create_served(
        self,
        *,
        job_id: str,
        owner: str,
        kind: JobKind,
        request: dict[str, Any],
        now: datetime,
        original: JobRecord,
        images: list[StoredImage],
        cache_key: str,
        callbacks: Callbacks | None = None,
        tokens: TokenCounts | None = None,
        warnings: list[str] | None = None,
    ) -> JobRecord: ...

    def served_by(self, cache_key: str) -> JobRecord | None: ...

    def parse(self, item: Mapping[str, Any]) -> JobRecord: ...

    def for_ticket(self, ticket: JobTicket) -> JobRecord: ...

    def get(self, job_id: str) -> JobRecord: ...

    def add_callbacks(self, job_id: str, callbacks: Callbacks, *, now: datetime) -> bool: ...

    def add_late_callbacks(self, job_id: str, callbacks: Callbacks, *, now: datetime) -> None: ...

    def record_told(
        self, job_id: str, *, told: Collection[str], all_told: bool, folded: int
    ) -> None: ...

    def untold(self, *, ended_before: datetime, limit: int = 100) -> list[str]: ...

    def never_started(
        self, *, created_before: datetime, limit: int = 100
    ) -> list[dict[str, Any]]: ...

    def mark_workflow_began(self, job_id: str, *, now: datetime) -> None: ...

    def claim_submit(self, job_id: str, *, run_token: str, now: datetime) -> bool: ...

    def release_submit(self, job_id: str) -> bool: ...

    def count_reconcile_failure(self, job_id: str, *, now: datetime) -> int: ...

    def touch(self, job_id: str, *, now: datetime) -> None: ...

    def mark_accepted(
        self,
        job_id: str,
        *,
        upstream_id: str,
        now: datetime,
        estimated_done_at: datetime | None = None,
    ) -> None: ...

    def mark_succeeded(
        self,
        job_id: str,
        *,
        images: list[StoredImage],
        upstream_completed_at: datetime,
        now: datetime,
        cache_key: str | None = None,
    ) -> bool: ...

    def mark_not_started(self, job_id: str, *, code: str, message: str, now: datetime) -> bool: ...

    def mark_failed(self, job_id: str, *, code: str, message: str, now: datetime) -> bool: ...

    def mark_cancelled(self, job_id: str, *, message: str, now: datetime) -> bool: ...

    def overdue(self, *, deadline_before: datetime, limit: int = 100) -> list[dict[str, Any]]: ...

    def page_of_owner(
        self,
        owner: str,
        *,
        limit: int,
        start_key: dict[str, Any] | None = None,
        status: JobStatus | None = None,
    ) -> tuple[list[JobRecord], dict[str, Any] | None]: ...


@runtime_checkable
class Upstream(Protocol):
    """The image generation API: the submit POST and the status check."""

    def submit(self, kind: JobKind, body: dict[str, Any]) -> UpstreamAnswer: ...

    def status(self, kind: JobKind, upstream_id: str) -> UpstreamAnswer: ...


@runtime_checkable
class ImageStore(Protocol):
    """The gateway's bucket of images. `copy_stored` raises StoredImagesGoneError when the
    originals cannot be copied (their retention ended)."""

    def copy_all(self, job_id: str, urls: list[str]) -> list[StoredImage]: ...

    def copy_stored(self, job_id: str, images: list[StoredImage]) -> list[StoredImage]: ...

    def presigned_url(self, key: str) -> str: ...


@runtime_checkable
class Workflow(Protocol):
    """The job's state machine executions, named after the job."""

    def start(self, ticket: JobTicket, *, name: str | None = None) -> bool: ...

    def status(self, name: str) -> str | None: ...

    def may_be_running(self, job_id: str, *, quiet_since: datetime, now: datetime) -> bool: ...

    def resume(self, ticket: JobTicket, *, now: datetime) -> bool: ...

    def stop(self, job_id: str, *, cause: str) -> None: ...


@runtime_checkable
class Notifier(Protocol):
    """How a caller hears of a job's end: the bus, its waiting task, its webhook."""

    def publish(self, completion: Completion) -> None: ...

    def answer_task(self, task_token: str, completion: Completion) -> None: ...

    def queue_webhook(
        self, url: str, completion: Completion, *, now: datetime, owner: str, variant: str = ""
    ) -> None: ...


@runtime_checkable
class UsageStore(Protocol):
    """Callers' daily image budgets, and the ledger of upstream POSTs."""

    def reserve(self, owner: str, images: int, *, now: datetime) -> None: ...

    def give_back(self, owner: str, images: int, *, accepted_at: datetime) -> None: ...

    def record_call(
        self, owner: str, *, kind: JobKind, images: int, job_id: str, now: datetime
    ) -> None: ...

    def today(self, owner: str, *, now: datetime) -> Usage: ...


@runtime_checkable
class UpstreamDurations(Protocol):
    """How long the upstream took for each shape of job (a few samples per shape): read when a
    job is accepted, written when one is stored. Never needed for correctness."""

    def estimate(self, shape: str, *, now: datetime) -> DurationEstimate | None: ...

    def record(self, shape: str, sample: DurationSample) -> None: ...


@runtime_checkable
class WebhookSecrets(Protocol):
    """Each owner's own webhook signing secret (`whsec_...`)."""

    def secret_for(self, owner: str) -> str: ...


class Ports(Protocol):
    """Everything a use case is handed (`deps`): read-only, so the wiring's lazily built
    collaborators and a plain dataclass of fakes both fit."""

    @property
    def settings(self) -> Settings: ...

    @property
    def jobs(self) -> JobStore: ...

    @property
    def upstream(self) -> Upstream: ...

    @property
    def images(self) -> ImageStore: ...

    @property
    def workflow(self) -> Workflow: ...

    @property
    def notifier(self) -> Notifier: ...

    @property
    def usage(self) -> UsageStore: ...

    @property
    def webhook_secrets(self) -> WebhookSecrets: ...

    @property
    def durations(self) -> UpstreamDurations: ...

    @property
    def clock(self) -> Callable[[], datetime]: ...

    # How a use case waits (between status checks, in a long poll).
    @property
    def sleep(self) -> Callable[[float], None]: ...

    def require_upstream_key(self) -> None:
        """Raise UpstreamKeyMissingError (no key stored yet) or ConfigurationError (none named,
        or unreadable). Apart from the upstream port: the submit functions check the key
        without loading the upstream client and its HTTP stack."""
        ...
