"""The jobs table's writes that end a job and tell its end: one ending per job (every ending is
conditional on the job being PENDING, and lists the job among the untold), and the record of what
of its end its callers were told. `JobStore` (adapters/job_store.py) is these and the rest."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from imagegateway.adapters.aws_clients import error_code
from imagegateway.domain.base import JobStatus
from imagegateway.domain.errors import FailureCode
from imagegateway.domain.records import Callbacks
from imagegateway.domain.tickets import StoredImage

PENDING_ATTRIBUTE = "pending"
PENDING_MARK = "1"
# Ended jobs whose end is not all told yet (sparse: the ending write sets `untold`, the last
# telling removes it), oldest end first: the reconciler tells the rest.
UNTOLD_ATTRIBUTE = "untold"
UNTOLD_MARK = "1"
UNTOLD_INDEX = "UntoldByCompleted"
CANCELLED = FailureCode.CANCELLED.value


def iso(moment: datetime) -> str:
    return moment.isoformat()


class JobEndingWrites:
    """The ending and telling writes, over the table `JobStore` opens."""

    _table: Any

    def _update_if(self, **update: Any) -> bool:
        """A conditional `update_item`; False if its condition did not hold."""
        try:
            self._table.update_item(**update)
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def add_late_callbacks(self, job_id: str, callbacks: Callbacks, *, now: datetime) -> None:
        """`callbacks` of a request folded into a job that has ended: kept on the row, the job
        back among the untold (its end owes them), so they are told even if telling them now
        fails."""
        self._table.update_item(
            Key={"job_id": job_id},
            UpdateExpression=(
                "SET also_tell = list_append(if_not_exists(also_tell, :none), :new), "
                f"{UNTOLD_ATTRIBUTE} = :untold, updated_at = :now"
            ),
            ConditionExpression="attribute_exists(job_id) AND #status <> :pending",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":none": [],
                ":new": [callbacks.model_dump(mode="json", exclude_none=True)],
                ":pending": JobStatus.PENDING.value,
                ":untold": UNTOLD_MARK,
                ":now": iso(now),
            },
        )

    def record_told(
        self, job_id: str, *, told: Collection[str], all_told: bool, folded: int
    ) -> None:
        """Note the tellings of the job's end done (`told`, added: two tellers never undo each
        other). With `all_told`, the job leaves the untold, unless a request was folded into it
        since its row was read (more than `folded`): that one is still owed."""
        names = {f"#{UNTOLD_ATTRIBUTE}": UNTOLD_ATTRIBUTE}
        values: dict[str, Any] = {":told": set(told)} if told else {}
        add = "ADD told :told " if told else ""
        if all_told and self._update_if(
            Key={"job_id": job_id},
            UpdateExpression=f"{add}REMOVE #{UNTOLD_ATTRIBUTE}",
            ConditionExpression=(
                "attribute_exists(job_id) AND "
                "(attribute_not_exists(also_tell) OR size(also_tell) = :folded)"
            ),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={**values, ":folded": folded},
        ):
            return
        if told:
            self._table.update_item(
                Key={"job_id": job_id},
                UpdateExpression=add,
                ConditionExpression="attribute_exists(job_id)",
                ExpressionAttributeValues=values,
            )

    def mark_succeeded(
        self,
        job_id: str,
        *,
        images: list[StoredImage],
        upstream_completed_at: datetime,
        now: datetime,
        cache_key: str | None = None,
    ) -> bool:
        """Record the SUCCESS; False if the job had ended already (cancelled, timed out, or a
        duplicate run stored it first). One ending per job: the first wins, and only its writer
        tells anyone, so a caller never hears two endings (a late success after a TIMED_OUT
        stays TIMED_OUT: the caller was told, its copies stay unused). A `cache_key` makes it
        findable by later identical fixed-seed requests of its caller."""
        values: dict[str, Any] = {}
        cached = ""
        if cache_key is not None:
            values[":cache_key"] = cache_key
            cached = ", cache_key = :cache_key"
        return self._update_if(
            Key={"job_id": job_id},
            UpdateExpression=(
                "SET #status = :success, images = :images, upstream_completed_at = :upstream, "
                f"completed_at = :now, updated_at = :now, {UNTOLD_ATTRIBUTE} = :untold{cached} "
                f"REMOVE error_code, error_message, {PENDING_ATTRIBUTE}"
            ),
            ConditionExpression="attribute_exists(job_id) AND #status = :pending",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":success": JobStatus.SUCCESS.value,
                ":images": [image.model_dump(mode="json") for image in images],
                ":upstream": iso(upstream_completed_at),
                ":now": iso(now),
                ":pending": JobStatus.PENDING.value,
                ":untold": UNTOLD_MARK,
                **values,
            },
        )

    def mark_not_started(self, job_id: str, *, code: str, message: str, now: datetime) -> bool:
        """End a still-PENDING job that was never sent upstream (its workflow could not be
        started, or the reconciler found it unsent), unless a run claimed its submit meanwhile
        (it may be POSTing: the job is left to it); False if it had ended or was claimed."""
        return self._end_failed(job_id, code=code, message=message, now=now, unclaimed=True)

    def mark_failed(self, job_id: str, *, code: str, message: str, now: datetime) -> bool:
        """Record a FAILURE if the job has not ended; True if this call recorded it. A job
        ends once: a late failure (a reconciler or RecordFailure deciding on a row read before a
        cancel) is refused, so its caller hears one ending and its images go back once."""
        return self._end_failed(job_id, code=code, message=message, now=now)

    def _end_failed(
        self,
        job_id: str,
        *,
        code: str,
        message: str,
        now: datetime,
        unclaimed: bool = False,
    ) -> bool:
        """End a PENDING job FAILURE (every ending is conditional on the job not having ended);
        False if the condition failed."""
        names = {"#status": "status"}
        values: dict[str, Any] = {
            ":failure": JobStatus.FAILURE.value,
            ":code": code,
            ":message": message[:1000],
            ":now": iso(now),
            ":pending": JobStatus.PENDING.value,
            ":untold": UNTOLD_MARK,
        }
        condition = "attribute_exists(job_id) AND #status = :pending"
        if unclaimed:
            condition += " AND attribute_not_exists(submit_started_at)"
        return self._update_if(
            Key={"job_id": job_id},
            UpdateExpression=(
                "SET #status = :failure, error_code = :code, error_message = :message, "
                f"completed_at = :now, updated_at = :now, {UNTOLD_ATTRIBUTE} = :untold "
                f"REMOVE {PENDING_ATTRIBUTE}"
            ),
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def mark_cancelled(self, job_id: str, *, message: str, now: datetime) -> bool:
        """End a still-PENDING job CANCELLED; False if it had already ended."""
        return self._end_failed(job_id, code=CANCELLED, message=message, now=now)
