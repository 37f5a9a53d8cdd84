"""The jobs table: one row per accepted request, the source of truth for GET status."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from imagegateway.adapters.aws_clients import dynamodb_table
from imagegateway.adapters.job_endings import (
    PENDING_ATTRIBUTE,
    PENDING_MARK,
    UNTOLD_ATTRIBUTE,
    UNTOLD_INDEX,
    UNTOLD_MARK,
    JobEndingWrites,
    iso,
)
from imagegateway.domain.base import JobKind, JobStatus
from imagegateway.domain.errors import ForeignTicketError, JobNotFoundError
from imagegateway.domain.records import Callbacks, JobRecord, TokenCounts
from imagegateway.domain.tickets import JobTicket, StoredImage
from imagegateway.platform.observability import logger, metrics
from imagegateway.platform.settings import Settings, get_settings

PENDING_INDEX = "PendingByDeadline"
OWNER_INDEX = "OwnerByCreated"
# Successful fixed-seed jobs by their cache key (imagegateway.use_cases.result_cache), newest first.
CACHE_INDEX = "ByCacheKey"


def _record(item: Mapping[str, Any]) -> JobRecord:
    data = dict(item)
    data["request"] = json.loads(str(data.get("request") or "{}"))
    return JobRecord.model_validate(data)


class JobStore(JobEndingWrites):
    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings or get_settings()
        self._table = dynamodb_table(self._settings.jobs_table_name)

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
        # Only unfinished jobs carry this, so the PendingByDeadline index stays small (sparse).
        return self._insert(record, {PENDING_ATTRIBUTE: PENDING_MARK})

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
        """A job born SUCCESS, served from `original`'s images (copied under its own keys): no
        workflow, no upstream call. It is findable by the same cache key in turn."""
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
        return self._insert(record, {"cache_key": cache_key, UNTOLD_ATTRIBUTE: UNTOLD_MARK})

    def _expires_at(self, now: datetime) -> int:
        return int((now + timedelta(days=self._settings.job_retention_days)).timestamp())

    def _insert(self, record: JobRecord, extra: dict[str, str]) -> JobRecord:
        """Write a new row (never over an existing one), with attributes the model does not
        hold (an index's sparse key)."""
        item = record.model_dump(mode="json", exclude_none=True)
        # Stored as JSON text: DynamoDB rejects Python floats, and the row never filters on it.
        item["request"] = json.dumps(record.request, separators=(",", ":"))
        item.update(extra)
        self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(job_id)")
        return record

    def served_by(self, cache_key: str) -> JobRecord | None:
        """The newest successful job with this cache key whose images are listed, if any (the
        index is eventually consistent: a job that succeeded a moment ago may be missed)."""
        page = self._table.query(
            IndexName=CACHE_INDEX,
            KeyConditionExpression="cache_key = :key",
            ExpressionAttributeValues={":key": cache_key},
            ScanIndexForward=False,
            Limit=3,
        )
        for item in page.get("Items", []):
            try:
                record = self.get(str(item["job_id"]))
            except JobNotFoundError:
                continue  # expired since
            if record.status is JobStatus.SUCCESS and record.images:
                return record
        return None

    @staticmethod
    def parse(item: Mapping[str, Any]) -> JobRecord:
        return _record(item)

    def for_ticket(self, ticket: JobTicket) -> JobRecord:
        """The ticket's job row, if the ticket is the gateway's own: its run token matches the
        row's (an execution started by anyone else, or with a tampered input, gets nothing)."""
        try:
            record = self.get(ticket.job_id)
        except JobNotFoundError as exc:
            raise ForeignTicketError("the workflow's input names no job of this gateway") from exc
        if not record.run_token or not secrets.compare_digest(record.run_token, ticket.run_token):
            logger.warning("refused a workflow input whose run token does not match its job")
            metrics.add_metric(name="ForeignTickets", unit="Count", value=1)
            raise ForeignTicketError("the workflow's input does not match its job")
        if ticket.upstream_id and record.upstream_id and ticket.upstream_id != record.upstream_id:
            raise ForeignTicketError("the workflow's input does not match its job's upstream id")
        return record

    def get(self, job_id: str) -> JobRecord:
        item = self._table.get_item(Key={"job_id": job_id}, ConsistentRead=True).get("Item")
        if item is None:
            raise JobNotFoundError(f"no job {job_id}")
        return _record(item)

    def add_callbacks(self, job_id: str, callbacks: Callbacks, *, now: datetime) -> bool:
        """Have `callbacks` told too when the job ends; False if it has ended already (then
        nobody will: the caller tells them itself). Conditional on PENDING, so a callback is
        either on the row the ending reads back or refused, never lost in between."""
        return self._update_if(
            Key={"job_id": job_id},
            UpdateExpression=(
                "SET also_tell = list_append(if_not_exists(also_tell, :none), :new), "
                "updated_at = :now"
            ),
            ConditionExpression="attribute_exists(job_id) AND #status = :pending",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":none": [],
                ":new": [callbacks.model_dump(mode="json", exclude_none=True)],
                ":pending": JobStatus.PENDING.value,
                ":now": iso(now),
            },
        )

    def mark_workflow_began(self, job_id: str, *, now: datetime) -> None:
        """A workflow was started for the job (by the reconciler, late): not started again."""
        self._table.update_item(
            Key={"job_id": job_id},
            UpdateExpression="SET workflow_began_at = if_not_exists(workflow_began_at, :now)",
            ConditionExpression="attribute_exists(job_id)",
            ExpressionAttributeValues={":now": iso(now)},
        )

    def untold(self, *, ended_before: datetime, limit: int = 100) -> list[str]:
        """The ids of jobs that ended before the given moment and whose end is not all told,
        oldest end first."""
        return [
            str(item["job_id"])
            for item in self._query_all(
                {
                    "IndexName": UNTOLD_INDEX,
                    "KeyConditionExpression": "#untold = :mark AND completed_at < :before",
                    "ExpressionAttributeNames": {"#untold": UNTOLD_ATTRIBUTE},
                    "ExpressionAttributeValues": {
                        ":mark": UNTOLD_MARK,
                        ":before": iso(ended_before),
                    },
                },
                limit=limit,
            )
        ]

    def never_started(self, *, created_before: datetime, limit: int = 100) -> list[dict[str, Any]]:
        """Unfinished jobs recorded before the given moment that no workflow run has reached
        (no submit ever claimed, no upstream id), as raw rows, oldest deadline first."""
        return self._query_all(
            {
                "IndexName": PENDING_INDEX,
                "KeyConditionExpression": "#pending = :mark",
                "FilterExpression": (
                    "attribute_not_exists(workflow_began_at) AND "
                    "attribute_not_exists(upstream_id) AND created_at < :before"
                ),
                "ExpressionAttributeNames": {"#pending": PENDING_ATTRIBUTE},
                "ExpressionAttributeValues": {
                    ":mark": PENDING_MARK,
                    ":before": iso(created_before),
                },
            },
            limit=limit,
        )

    def _query_all(self, query: dict[str, Any], *, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` items of a query, read on page after page."""
        found: list[dict[str, Any]] = []
        while len(found) < limit:
            page = self._table.query(**query)
            found.extend(dict(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return found[:limit]

    def claim_submit(self, job_id: str, *, run_token: str, now: datetime) -> bool:
        """Record, once, that the upstream POST is about to be sent. False if an earlier attempt
        already claimed it (it may have sent the POST) or the job is no longer PENDING."""
        return self._update_if(
            Key={"job_id": job_id},
            UpdateExpression=(
                "SET submit_started_at = :now, updated_at = :now, "
                "workflow_began_at = if_not_exists(workflow_began_at, :now)"
            ),
            ConditionExpression=(
                "attribute_not_exists(submit_started_at) AND run_token = :token "
                "AND #status = :pending"
            ),
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":now": iso(now),
                ":token": run_token,
                ":pending": JobStatus.PENDING.value,
            },
        )

    def release_submit(self, job_id: str) -> bool:
        """Undo `claim_submit` when the POST provably never reached the upstream; False if the
        job ended meanwhile. Then the claim stays: whoever ended the job decided, on the claim,
        not to give its images back, and nobody else does (never twice; a count a little high
        at worst)."""
        return self._update_if(
            Key={"job_id": job_id},
            UpdateExpression="REMOVE submit_started_at",
            ConditionExpression=(
                "attribute_exists(job_id) AND attribute_not_exists(upstream_id) "
                "AND #status = :pending"
            ),
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":pending": JobStatus.PENDING.value},
        )

    def count_reconcile_failure(self, job_id: str, *, now: datetime) -> int:
        """One more reconciler run failed on this job; returns how many have."""
        answer = self._table.update_item(
            Key={"job_id": job_id},
            UpdateExpression="ADD reconcile_failures :one SET updated_at = :now",
            ConditionExpression="attribute_exists(job_id)",
            ExpressionAttributeValues={":one": 1, ":now": iso(now)},
            ReturnValues="UPDATED_NEW",
        )
        count = answer.get("Attributes", {}).get("reconcile_failures", 1)
        return int(str(count))

    def touch(self, job_id: str, *, now: datetime) -> None:
        """Note activity on the job (a resumed workflow): its `updated_at` is now."""
        self._table.update_item(
            Key={"job_id": job_id},
            UpdateExpression="SET updated_at = :now",
            ConditionExpression="attribute_exists(job_id)",
            ExpressionAttributeValues={":now": iso(now)},
        )

    def mark_accepted(
        self,
        job_id: str,
        *,
        upstream_id: str,
        now: datetime,
        estimated_done_at: datetime | None = None,
    ) -> None:
        update = "SET upstream_id = :u, accepted_at = :now, updated_at = :now"
        values = {":u": upstream_id, ":now": iso(now)}
        if estimated_done_at is not None:
            update += ", estimated_done_at = :eta"
            values[":eta"] = iso(estimated_done_at)
        self._table.update_item(
            Key={"job_id": job_id},
            UpdateExpression=update,
            ConditionExpression="attribute_exists(job_id)",
            ExpressionAttributeValues=values,
        )

    def overdue(self, *, deadline_before: datetime, limit: int = 100) -> list[dict[str, Any]]:
        """Unfinished jobs whose deadline is before the given moment, oldest first, as raw rows:
        each is parsed (`JobStore.parse`) by its caller, so one malformed row fails alone."""
        return self._query_all(
            {
                "IndexName": PENDING_INDEX,
                "KeyConditionExpression": "#pending = :mark AND deadline_at < :before",
                "ExpressionAttributeNames": {"#pending": PENDING_ATTRIBUTE},
                "ExpressionAttributeValues": {
                    ":mark": PENDING_MARK,
                    ":before": iso(deadline_before),
                },
            },
            limit=limit,
        )

    def page_of_owner(
        self,
        owner: str,
        *,
        limit: int,
        start_key: dict[str, Any] | None = None,
        status: JobStatus | None = None,
    ) -> tuple[list[JobRecord], dict[str, Any] | None]:
        """Up to `limit` of the owner's jobs, newest first, and the key to continue from (None
        at the end). A status filter reads on until the page is full or the jobs run out."""
        query: dict[str, Any] = {
            "IndexName": OWNER_INDEX,
            "KeyConditionExpression": "#owner = :owner",
            "ExpressionAttributeNames": {"#owner": "owner"},
            "ExpressionAttributeValues": {":owner": owner},
            "ScanIndexForward": False,
        }
        if status is not None:
            query["FilterExpression"] = "#status = :status"
            query["ExpressionAttributeNames"]["#status"] = "status"
            query["ExpressionAttributeValues"][":status"] = status.value
        found: list[JobRecord] = []
        last_key = start_key
        while len(found) < limit:
            if last_key:
                query["ExclusiveStartKey"] = last_key
            query["Limit"] = limit - len(found)
            page = self._table.query(**query)
            found.extend(_record(item) for item in page.get("Items", []))
            last_key = page.get("LastEvaluatedKey")
            if not last_key:
                break
        return found, (dict(last_key) if last_key else None)
