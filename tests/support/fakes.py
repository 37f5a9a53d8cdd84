"""One in-memory fake per port (`imagegateway.use_cases.ports`), shared by the unit tests, and
`fake_ports()`, a `Ports` of them. No AWS, no sockets.

The fakes keep the adapters' rules, not just their signatures: the job store's conditional
writes return False (or raise ConditionFailed) exactly where DynamoDB's conditions would fail,
the usage store refuses past the budget as its conditional update does, and the workflow is the
adapter itself over in-memory executions. A use case that passes against them relies on nothing
the real adapters would not do.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from imagegateway.adapters.webhook_secrets import owner_secret
from imagegateway.adapters.workflow import Workflow as WorkflowAdapter
from imagegateway.domain.base import JobKind, JobStatus
from imagegateway.domain.errors import (
    FailureCode,
    ForeignTicketError,
    GatewayError,
    ImageDownloadError,
    JobNotFoundError,
    StoredImagesGoneError,
)
from imagegateway.domain.events import Completion
from imagegateway.domain.image_requests import UpstreamAnswer
from imagegateway.domain.records import Callbacks, JobRecord, TokenCounts
from imagegateway.domain.tickets import JobTicket, StoredImage
from imagegateway.domain.upstream_durations import (
    SAMPLES_KEPT,
    DurationEstimate,
    DurationSample,
    estimate_of,
)
from imagegateway.domain.usage import Usage, budget_exceeded, day_of, fits, resets_at
from imagegateway.platform.settings import Settings
from imagegateway.use_cases import ports

START = datetime.fromisoformat("2026-11-25T12:00:00+00:00")
CANCELLED = FailureCode.CANCELLED.value
STATE_MACHINE_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:jobs"


class ConditionFailed(Exception):
    """A write whose condition did not hold, where the adapter lets DynamoDB's
    ConditionalCheckFailedException escape."""


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _stored(value: Any) -> Any:
    """A value as the table holds it (what `model_dump(mode="json")` or `_iso` writes)."""
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, list):
        return [_stored(item) for item in value]
    return value


# --------------------------------------------------------------------------- the clock


class FakeClock:
    """A clock that moves only when slept on (or advanced); `at` runs an action once the clock
    reaches a moment (a caller cancelling mid-stretch, say)."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now
        self.slept: list[float] = []
        self._due: list[tuple[datetime, Callable[[], object]]] = []

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self._run_due()

    def at(self, moment: datetime, action: Callable[[], object]) -> None:
        self._due.append((moment, action))
        self._run_due()

    def _run_due(self) -> None:
        due = [entry for entry in self._due if entry[0] <= self.now]
        self._due = [entry for entry in self._due if entry[0] > self.now]
        for _, action in due:
            action()


# --------------------------------------------------------------------------- the job store


class FakeJobStore:
    """The jobs table as a dict of items (what DynamoDB would hold: ISO times, the request as
    JSON text, the sparse `pending` mark), with adapters/job_store.py's conditions.

    `writes` lists every write asked for, (method, job id), whether its condition held or not."""

    def __init__(self, *rows: JobRecord | Mapping[str, Any], retention_days: int = 30) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.writes: list[tuple[str, str]] = []
        self._retention = timedelta(days=retention_days)
        for row in rows:
            self.put(row)

    # -- test set-up and inspection

    def put(self, row: JobRecord | Mapping[str, Any]) -> None:
        """A row as it would be in the table (a malformed one too: it fails when parsed)."""
        data = row.model_dump(mode="json") if isinstance(row, JobRecord) else dict(row)
        item = {name: _stored(value) for name, value in data.items() if value is not None}
        if not isinstance(item.get("request", ""), str):
            item["request"] = json.dumps(item["request"], separators=(",", ":"))
        if item.get("status") == JobStatus.PENDING.value:
            item.setdefault("pending", "1")
        self.items[str(item["job_id"])] = item

    @property
    def failed(self) -> dict[str, str]:
        """The error code of every job that ended FAILURE, by job id."""
        return {
            job_id: str(item.get("error_code"))
            for job_id, item in self.items.items()
            if item.get("status") == JobStatus.FAILURE.value
        }

    # -- the port

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
    ) -> JobRecord:
        self.writes.append(("create", job_id))
        record = JobRecord.pending(
            job_id=job_id,
            owner=owner,
            kind=kind,
            request=request,
            now=now,
            deadline_at=deadline_at,
            run_token=run_token,
            expires_at=self._expires_at(now),
            callbacks=callbacks,
            tokens=tokens,
            warnings=warnings,
        )
        return self._insert(record, {"pending": "1"})

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
    ) -> JobRecord:
        self.writes.append(("create_served", job_id))
        record = JobRecord.served(
            job_id=job_id,
            owner=owner,
            kind=kind,
            request=request,
            now=now,
            original=original,
            images=images,
            expires_at=self._expires_at(now),
            callbacks=callbacks,
            tokens=tokens,
            warnings=warnings,
        )
        return self._insert(record, {"cache_key": cache_key, "untold": "1"})

    def _expires_at(self, now: datetime) -> int:
        return int((now + self._retention).timestamp())

    def _insert(self, record: JobRecord, extra: dict[str, str]) -> JobRecord:
        if record.job_id in self.items:  # attribute_not_exists(job_id)
            raise ConditionFailed(f"job {record.job_id} exists")
        self.put(record)
        self.items[record.job_id].update(extra)
        if "pending" not in extra:
            self.items[record.job_id].pop("pending", None)
        return record

    def served_by(self, cache_key: str) -> JobRecord | None:
        # The index, newest first, three at a time; only a SUCCESS with images serves.
        keyed = [item for item in self.items.values() if item.get("cache_key") == cache_key]
        keyed.sort(key=lambda item: str(item["created_at"]), reverse=True)
        for item in keyed[:3]:
            record = self.parse(item)
            if record.status is JobStatus.SUCCESS and record.images:
                return record
        return None

    @staticmethod
    def parse(item: Mapping[str, Any]) -> JobRecord:
        data = dict(item)
        data["request"] = json.loads(str(data.get("request") or "{}"))
        return JobRecord.model_validate(data)

    def for_ticket(self, ticket: JobTicket) -> JobRecord:
        try:
            record = self.get(ticket.job_id)
        except JobNotFoundError as exc:
            raise ForeignTicketError("the workflow's input names no job of this gateway") from exc
        if not record.run_token or not secrets.compare_digest(record.run_token, ticket.run_token):
            raise ForeignTicketError("the workflow's input does not match its job")
        if ticket.upstream_id and record.upstream_id and ticket.upstream_id != record.upstream_id:
            raise ForeignTicketError("the workflow's input does not match its job's upstream id")
        return record

    def get(self, job_id: str) -> JobRecord:
        item = self.items.get(job_id)
        if item is None:
            raise JobNotFoundError(f"no job {job_id}")
        return self.parse(item)

    def _item(self, job_id: str) -> dict[str, Any]:
        """The row a write needs (attribute_exists(job_id)), or ConditionFailed."""
        item = self.items.get(job_id)
        if item is None:
            raise ConditionFailed(f"no job {job_id}")
        return item

    def add_callbacks(self, job_id: str, callbacks: Callbacks, *, now: datetime) -> bool:
        self.writes.append(("add_callbacks", job_id))
        item = self.items.get(job_id)
        if item is None or item.get("status") != JobStatus.PENDING.value:
            return False
        told = [*item.get("also_tell", []), callbacks.model_dump(mode="json", exclude_none=True)]
        item |= {"also_tell": told, "updated_at": _iso(now)}
        return True

    def add_late_callbacks(self, job_id: str, callbacks: Callbacks, *, now: datetime) -> None:
        self.writes.append(("add_late_callbacks", job_id))
        item = self._item(job_id)
        if item.get("status") == JobStatus.PENDING.value:
            raise ConditionFailed(f"job {job_id} has not ended")
        told = [*item.get("also_tell", []), callbacks.model_dump(mode="json", exclude_none=True)]
        item |= {"also_tell": told, "untold": "1", "updated_at": _iso(now)}

    def record_told(
        self, job_id: str, *, told: Collection[str], all_told: bool, folded: int
    ) -> None:
        self.writes.append(("record_told", job_id))
        item = self._item(job_id)
        if told:  # ADD told :told (a string set)
            item["told"] = sorted({*item.get("told", []), *told})
        if all_told and len(item.get("also_tell", [])) == folded:
            item.pop("untold", None)

    def untold(self, *, ended_before: datetime, limit: int = 100) -> list[str]:
        # The sparse UntoldByCompleted index, oldest end first.
        found = [
            item
            for item in self.items.values()
            if item.get("untold") == "1"
            and datetime.fromisoformat(str(item["completed_at"])) < ended_before
        ]
        found.sort(key=lambda item: str(item["completed_at"]))
        return [str(item["job_id"]) for item in found[:limit]]

    def never_started(self, *, created_before: datetime, limit: int = 100) -> list[dict[str, Any]]:
        # The PendingByDeadline index, filtered: no run reached the job, recorded a while ago.
        found = [
            item
            for item in self.items.values()
            if item.get("pending") == "1"
            and "workflow_began_at" not in item
            and "upstream_id" not in item
            and datetime.fromisoformat(str(item["created_at"])) < created_before
        ]
        found.sort(key=lambda item: str(item["deadline_at"]))
        return [dict(item) for item in found[:limit]]

    def mark_workflow_began(self, job_id: str, *, now: datetime) -> None:
        self.writes.append(("mark_workflow_began", job_id))
        self._item(job_id).setdefault("workflow_began_at", _iso(now))

    def claim_submit(self, job_id: str, *, run_token: str, now: datetime) -> bool:
        self.writes.append(("claim_submit", job_id))
        item = self.items.get(job_id)
        if (
            item is None
            or "submit_started_at" in item
            or item.get("run_token") != run_token
            or item.get("status") != JobStatus.PENDING.value
        ):
            return False
        item |= {"submit_started_at": _iso(now), "updated_at": _iso(now)}
        item.setdefault("workflow_began_at", _iso(now))
        return True

    def release_submit(self, job_id: str) -> bool:
        self.writes.append(("release_submit", job_id))
        item = self.items.get(job_id)
        if item is None or "upstream_id" in item or item.get("status") != JobStatus.PENDING.value:
            return False  # the upstream has it, or it ended meanwhile: the claim stays
        item.pop("submit_started_at", None)
        return True

    def count_reconcile_failure(self, job_id: str, *, now: datetime) -> int:
        self.writes.append(("count_reconcile_failure", job_id))
        item = self._item(job_id)
        item["reconcile_failures"] = int(item.get("reconcile_failures", 0)) + 1
        item["updated_at"] = _iso(now)
        return int(item["reconcile_failures"])

    def touch(self, job_id: str, *, now: datetime) -> None:
        self.writes.append(("touch", job_id))
        self._item(job_id)["updated_at"] = _iso(now)

    def mark_accepted(
        self,
        job_id: str,
        *,
        upstream_id: str,
        now: datetime,
        estimated_done_at: datetime | None = None,
    ) -> None:
        self.writes.append(("mark_accepted", job_id))
        item = self._item(job_id)
        item.update({"upstream_id": upstream_id, "accepted_at": _iso(now), "updated_at": _iso(now)})
        if estimated_done_at is not None:
            item["estimated_done_at"] = _iso(estimated_done_at)

    def mark_succeeded(
        self,
        job_id: str,
        *,
        images: list[StoredImage],
        upstream_completed_at: datetime,
        now: datetime,
        cache_key: str | None = None,
    ) -> bool:
        self.writes.append(("mark_succeeded", job_id))
        item = self.items.get(job_id)
        if item is None or item.get("status") != JobStatus.PENDING.value:
            return False  # one ending per job: the first wins
        item |= {
            "status": JobStatus.SUCCESS.value,
            "images": [image.model_dump(mode="json") for image in images],
            "upstream_completed_at": _iso(upstream_completed_at),
            "completed_at": _iso(now),
            "updated_at": _iso(now),
            "untold": "1",
        }
        if cache_key is not None:
            item["cache_key"] = cache_key
        for name in ("error_code", "error_message", "pending"):
            item.pop(name, None)
        return True

    def mark_not_started(self, job_id: str, *, code: str, message: str, now: datetime) -> bool:
        self.writes.append(("mark_not_started", job_id))
        return self._end_failed(
            job_id, code=code, message=message, now=now, only_if=JobStatus.PENDING, unclaimed=True
        )

    def mark_failed(self, job_id: str, *, code: str, message: str, now: datetime) -> bool:
        self.writes.append(("mark_failed", job_id))
        return self._end_failed(
            job_id, code=code, message=message, now=now, only_if=JobStatus.PENDING
        )

    def mark_cancelled(self, job_id: str, *, message: str, now: datetime) -> bool:
        self.writes.append(("mark_cancelled", job_id))
        return self._end_failed(
            job_id, code=CANCELLED, message=message, now=now, only_if=JobStatus.PENDING
        )

    def _end_failed(
        self,
        job_id: str,
        *,
        code: str,
        message: str,
        now: datetime,
        only_if: JobStatus | None = None,
        unclaimed: bool = False,
    ) -> bool:
        item = self.items.get(job_id)
        if (
            item is None
            or (only_if is not None and item.get("status") != only_if.value)
            or (unclaimed and "submit_started_at" in item)
        ):
            return False
        item |= {
            "status": JobStatus.FAILURE.value,
            "error_code": code,
            "error_message": message[:1000],
            "completed_at": _iso(now),
            "updated_at": _iso(now),
            "untold": "1",
        }
        item.pop("pending", None)
        return True

    def overdue(self, *, deadline_before: datetime, limit: int = 100) -> list[dict[str, Any]]:
        # The sparse PendingByDeadline index, oldest deadline first, as raw rows.
        pending = [
            item
            for item in self.items.values()
            if item.get("pending") == "1"
            and datetime.fromisoformat(str(item["deadline_at"])) < deadline_before
        ]
        pending.sort(key=lambda item: datetime.fromisoformat(str(item["deadline_at"])))
        return [dict(item) for item in pending[:limit]]

    def page_of_owner(
        self,
        owner: str,
        *,
        limit: int,
        start_key: dict[str, Any] | None = None,
        status: JobStatus | None = None,
    ) -> tuple[list[JobRecord], dict[str, Any] | None]:
        # The OwnerByCreated index, newest first, continuing after `start_key`'s job.
        owned = [item for item in self.items.values() if item.get("owner") == owner]
        owned.sort(key=lambda item: str(item["created_at"]), reverse=True)
        if start_key is not None:
            ids = [str(item["job_id"]) for item in owned]
            after = ids.index(str(start_key["job_id"])) + 1 if start_key["job_id"] in ids else 0
            owned = owned[after:]
        if status is not None:
            owned = [item for item in owned if item.get("status") == status.value]
        page, rest = owned[:limit], owned[limit:]
        last = page[-1] if page and rest else None
        last_key = (
            {name: last[name] for name in ("job_id", "owner", "created_at")} if last else None
        )
        return [self.parse(item) for item in page], last_key


# --------------------------------------------------------------------------- the upstream

Scripted = UpstreamAnswer | Exception


class FakeUpstream:
    """Scripted answers: `submits` in order, one per POST (an exception is raised); status
    answers by upstream id, or from `status_of` (for answers that depend on the clock)."""

    def __init__(
        self,
        *submits: Scripted,
        statuses: Mapping[str, Scripted] | None = None,
        status_of: Callable[[JobKind, str], UpstreamAnswer] | None = None,
    ) -> None:
        self.submits = list(submits)
        self.statuses = dict(statuses or {})
        self.status_of = status_of
        self.submitted: list[tuple[JobKind, dict[str, Any]]] = []
        self.asked: list[tuple[JobKind, str]] = []

    @property
    def posts(self) -> int:
        return len(self.submitted)

    def submit(self, kind: JobKind, body: dict[str, Any]) -> UpstreamAnswer:
        self.submitted.append((kind, body))
        if not self.submits:
            raise AssertionError("an upstream POST nobody expected")
        return _answer(self.submits.pop(0))

    def status(self, kind: JobKind, upstream_id: str) -> UpstreamAnswer:
        self.asked.append((kind, upstream_id))
        if self.status_of is not None:
            return self.status_of(kind, upstream_id)
        return _answer(self.statuses[upstream_id])


def _answer(scripted: Scripted) -> UpstreamAnswer:
    if isinstance(scripted, Exception):
        raise scripted
    return scripted


# --------------------------------------------------------------------------- the image store


class FakeImageStore:
    """The bucket as a dict of keys. `copy_all` "downloads" each URL into a PNG under the
    adapter's deterministic keys; `copy_stored` fails as the adapter does when an original is
    gone (StoredImagesGoneError)."""

    def __init__(self, base_url: str = "https://images.s3.amazonaws.com") -> None:
        self.base_url = base_url
        self.objects: dict[str, StoredImage] = {}

    def copy_all(self, job_id: str, urls: list[str]) -> list[StoredImage]:
        if not urls:
            raise ImageDownloadError("the upstream reported SUCCESS without any download_urls")
        stored = [
            StoredImage(
                index=index,
                key=f"jobs/{job_id}/{index}.png",
                content_type="image/png",
                size=len(url),
                sha256=hashlib.sha256(url.encode()).hexdigest(),
            )
            for index, url in enumerate(urls)
        ]
        self.objects |= {image.key: image for image in stored}
        return stored

    def copy_stored(self, job_id: str, images: list[StoredImage]) -> list[StoredImage]:
        copies = []
        for image in images:
            if image.key not in self.objects:
                raise StoredImagesGoneError(f"image {image.index}: NoSuchKey")
            extension = image.key.rsplit(".", 1)[-1]
            key = f"jobs/{job_id}/{image.index}.{extension}"
            copies.append(image.model_copy(update={"key": key}))
        self.objects |= {copy.key: copy for copy in copies}
        return copies

    def presigned_url(self, key: str) -> str:
        return f"{self.base_url}/{key}?X-Amz-Signature=1"


# --------------------------------------------------------------------------- the workflow


class FakeWorkflow(WorkflowAdapter):
    """The adapter's own rules (execution names, the resume name, Express lifetimes) over
    in-memory executions: only the Step Functions calls are replaced. `executions` holds each
    execution's status by name (an exception: DescribeExecution fails); a Standard start makes
    its execution RUNNING; `starts=False`: Step Functions refuses every start."""

    def __init__(
        self,
        executions: Mapping[str, str | Exception] | None = None,
        *,
        express: bool = False,
        starts: bool = True,
    ) -> None:
        super().__init__(STATE_MACHINE_ARN, express=express)
        self.express = express
        self.starts = starts
        self.executions: dict[str, str | Exception] = dict(executions or {})
        self.started: list[tuple[str, JobTicket]] = []
        self.stopped: list[tuple[str, str]] = []

    def start(self, ticket: JobTicket, *, name: str | None = None) -> bool:
        name = name or ticket.job_id
        if not self.starts:
            return False
        if name in self.executions and not self.express:
            return True  # ExecutionAlreadyExists: the job is followed already
        self.started.append((name, ticket))
        self.executions[name] = "RUNNING"
        return True

    def status(self, name: str) -> str | None:
        status = self.executions.get(name)
        if isinstance(status, Exception):
            raise status
        return status

    def stop(self, job_id: str, *, cause: str) -> None:
        self.stopped.append((job_id, cause))
        if self.express:
            return  # an Express execution cannot be stopped: it stops itself
        for name in self.names_of(job_id):
            if self.executions.get(name) == "RUNNING":
                self.executions[name] = "ABORTED"


# --------------------------------------------------------------------------- the notifier


class ServiceDown(Exception):
    """A staged outage: the bus, Step Functions or the webhook queue refuses the call."""


class FakeNotifier:
    """Records every completion published, every task answered and every webhook queued. A
    channel in `down` ("event", "task", "webhook") refuses every call until it is taken out."""

    def __init__(self) -> None:
        self.down: set[str] = set()
        self.published: list[Completion] = []
        self.answered: list[tuple[str, Completion]] = []
        self.webhooks: list[tuple[str, Completion]] = []
        # (url, owner, variant) of each webhook queued: whose secret signs it, which copy it is.
        self.webhook_owners: list[tuple[str, str, str]] = []

    def _refuse_if_down(self, channel: str) -> None:
        if channel in self.down:
            raise ServiceDown(f"the {channel} channel is down")

    def publish(self, completion: Completion) -> None:
        self._refuse_if_down("event")
        self.published.append(completion)

    def answer_task(self, task_token: str, completion: Completion) -> None:
        self._refuse_if_down("task")
        self.answered.append((task_token, completion))

    def queue_webhook(
        self, url: str, completion: Completion, *, now: datetime, owner: str, variant: str = ""
    ) -> None:
        self._refuse_if_down("webhook")
        self.webhooks.append((url, completion))
        self.webhook_owners.append((url, owner, variant))


# --------------------------------------------------------------------------- the usage store


class FakeUsageStore:
    """Images per (caller, UTC day) and the ledger, with usage_store.py's rules: a reservation
    is refused when the day's count would pass the budget (a day's first one too: a job bigger
    than the whole budget never fits), a give-back needs the day's count."""

    def __init__(self, budget: int | None = None) -> None:
        self.budget = budget
        self.days: dict[tuple[str, str], int] = {}
        self.ledger: list[dict[str, Any]] = []
        self.given_back: list[tuple[str, int]] = []

    def reserve(self, owner: str, images: int, *, now: datetime) -> None:
        day = (owner, day_of(now).isoformat())
        used = self.days.get(day, 0)
        if self.budget is not None and not fits(images, used=used, budget=self.budget):
            raise budget_exceeded(images, used=used, budget=self.budget, now=now)
        self.days[day] = used + images

    def give_back(self, owner: str, images: int, *, accepted_at: datetime) -> None:
        day = (owner, day_of(accepted_at).isoformat())
        if day not in self.days:
            raise ConditionFailed(f"no count for {day}")
        self.days[day] -= images
        self.given_back.append((owner, images))

    def record_call(
        self, owner: str, *, kind: JobKind, images: int, job_id: str, now: datetime
    ) -> None:
        self.ledger.append(
            {"owner": owner, "kind": kind, "images": images, "job_id": job_id, "at": now}
        )

    def today(self, owner: str, *, now: datetime) -> Usage:
        images = max(0, self.days.get((owner, day_of(now).isoformat()), 0))
        remaining = None if self.budget is None else max(0, self.budget - images)
        return Usage(
            day=day_of(now),
            images=images,
            budget=self.budget,
            remaining=remaining,
            resets_at=resets_at(now),
        )


# --------------------------------------------------------------------------- upstream durations


class FakeUpstreamDurations:
    """The shapes' latest samples in memory, with the adapter's rules: the last SAMPLES_KEPT are
    kept, the estimate is the domain's over them (`domain.upstream_durations.estimate_of`).
    `broken`: every read and write raises (a throttled or missing table)."""

    def __init__(self, *, broken: bool = False) -> None:
        self.samples: dict[str, list[DurationSample]] = {}
        self.broken = broken

    def estimate(self, shape: str, *, now: datetime) -> DurationEstimate | None:
        if self.broken:
            raise ServiceDown("durations")
        return estimate_of(self.samples.get(shape, []), now=now)

    def record(self, shape: str, sample: DurationSample) -> None:
        if self.broken:
            raise ServiceDown("durations")
        kept = [*self.samples.get(shape, []), sample]
        self.samples[shape] = kept[-SAMPLES_KEPT:]


# --------------------------------------------------------------------------- all of them


def _settings() -> Settings:
    return Settings(jobs_table_name="jobs", images_bucket_name="images")


class FakeWebhookSecrets:
    """The real derivation (adapters.webhook_secrets.owner_secret) from a fixed master secret."""

    MASTER = "whsec_" + "A" * 32

    def secret_for(self, owner: str) -> str:
        return owner_secret(self.MASTER, owner)


@dataclass
class FakePorts:
    """A `Ports` of fakes (made by `fake_ports`). `upstream_key_error`: what
    `require_upstream_key` raises (none: the key is there)."""

    settings: Settings
    jobs: FakeJobStore
    upstream: FakeUpstream
    images: FakeImageStore
    workflow: FakeWorkflow
    notifier: FakeNotifier
    usage: FakeUsageStore
    webhook_secrets: FakeWebhookSecrets
    durations: FakeUpstreamDurations
    clock: Callable[[], datetime]
    sleep: Callable[[float], None]
    upstream_key_error: GatewayError | None = None

    def require_upstream_key(self) -> None:
        if self.upstream_key_error is not None:
            raise self.upstream_key_error


def fake_ports(
    *,
    settings: Settings | None = None,
    jobs: FakeJobStore | None = None,
    upstream: FakeUpstream | None = None,
    images: FakeImageStore | None = None,
    workflow: FakeWorkflow | None = None,
    notifier: FakeNotifier | None = None,
    usage: FakeUsageStore | None = None,
    durations: FakeUpstreamDurations | None = None,
    clock: Callable[[], datetime] | None = None,
    sleep: Callable[[float], None] | None = None,
    upstream_key_error: GatewayError | None = None,
) -> FakePorts:
    """Fakes for every port, with those given; a FakeClock's sleep moves that clock."""
    clock = clock or FakeClock()
    if sleep is None:
        sleep = clock.sleep if isinstance(clock, FakeClock) else (lambda seconds: None)
    return FakePorts(
        settings=settings or _settings(),
        jobs=jobs or FakeJobStore(),
        upstream=upstream or FakeUpstream(),
        images=images or FakeImageStore(),
        workflow=workflow or FakeWorkflow(),
        notifier=notifier or FakeNotifier(),
        usage=usage or FakeUsageStore(),
        webhook_secrets=FakeWebhookSecrets(),
        durations=durations or FakeUpstreamDurations(),
        clock=clock,
        sleep=sleep,
        upstream_key_error=upstream_key_error,
    )


def _fits(deps: FakePorts) -> ports.Ports:
    """Never called: the type checker holds FakePorts (and so every fake) to the ports."""
    return deps
