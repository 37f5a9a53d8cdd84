"""Callers' usage of the upstream, in one DynamoDB table (UsageTable), keyed by caller:

- `day#YYYY-MM-DD`: the images the caller's jobs of that (UTC) day asked the upstream for, the
  count a daily budget is checked against. A job's images are counted, conditionally on the
  budget, when the job is accepted (before anything is sent), and given back if the job ends
  without ever being sent (nothing was charged).
- `call#<time>#<job id>`: the ledger, one item per upstream POST that may have been charged
  (kind, images, job, time).

Items expire (DynamoDB TTL) after `USAGE_RETENTION_DAYS`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from imagegateway.adapters.aws_clients import dynamodb_table, error_code
from imagegateway.domain.base import JobKind
from imagegateway.domain.usage import Usage, budget_exceeded, day_of, fits, resets_at
from imagegateway.platform.settings import Settings

USAGE_RETENTION_DAYS = 400
DAY_PREFIX = "day#"
CALL_PREFIX = "call#"


class UsageStore:
    """The usage table. Without one (settings that name none: a unit test's) nothing is counted
    and nothing refused; every function that counts requires the table's name (its app.py)."""

    def __init__(self, settings: Settings) -> None:
        self._budget = settings.caller_daily_image_budget
        self._table = (
            dynamodb_table(settings.usage_table_name) if settings.usage_table_name else None
        )

    def reserve(self, owner: str, images: int, *, now: datetime) -> None:
        """Count `images` against the caller's day, or raise BudgetExceededError (nothing is
        counted) if they do not fit its budget. Atomic: concurrent submits cannot overshoot."""
        if self._table is None:
            return
        budget = self._budget
        if budget is not None and not fits(images, used=0, budget=budget):
            # Bigger than the whole budget: refused even on a day with nothing spent. The
            # condition below lets a day without a count yet through, which is only right
            # for a job that fits an empty day (:room >= 0).
            raise budget_exceeded(
                images, used=self.today(owner, now=now).images, budget=budget, now=now
            )
        values: dict[str, Any] = {":images": images, ":expires": _expires(now)}
        extra: dict[str, Any] = {}
        if budget is not None:
            values[":room"] = budget - images
            extra["ConditionExpression"] = "attribute_not_exists(images) OR images <= :room"
        try:
            self._table.update_item(
                Key={"owner": owner, "entry": DAY_PREFIX + day_of(now).isoformat()},
                UpdateExpression="ADD images :images SET expires_at = :expires",
                ExpressionAttributeValues=values,
                **extra,
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException" or budget is None:
                raise
            used = self.today(owner, now=now).images
            raise budget_exceeded(images, used=used, budget=budget, now=now) from exc

    def give_back(self, owner: str, images: int, *, accepted_at: datetime) -> None:
        """A job that was never sent: its images no longer count against its day."""
        if self._table is None:
            return
        self._table.update_item(
            Key={"owner": owner, "entry": DAY_PREFIX + day_of(accepted_at).isoformat()},
            UpdateExpression="ADD images :minus",
            ConditionExpression="attribute_exists(images)",
            ExpressionAttributeValues={":minus": -images},
        )

    def record_call(
        self, owner: str, *, kind: JobKind, images: int, job_id: str, now: datetime
    ) -> None:
        """The ledger: an upstream POST that may have been charged."""
        if self._table is None:
            return
        self._table.put_item(
            Item={
                "owner": owner,
                "entry": f"{CALL_PREFIX}{now.astimezone(UTC).isoformat()}#{job_id}",
                "kind": kind.value,
                "images": images,
                "job_id": job_id,
                "at": now.astimezone(UTC).isoformat(),
                "expires_at": _expires(now),
            }
        )

    def today(self, owner: str, *, now: datetime) -> Usage:
        if self._table is None:
            return self._usage(0, now)
        item = self._table.get_item(
            Key={"owner": owner, "entry": DAY_PREFIX + day_of(now).isoformat()},
            ConsistentRead=True,
        ).get("Item")
        return self._usage(max(0, int(str((item or {}).get("images", 0)))), now)

    def _usage(self, images: int, now: datetime) -> Usage:
        remaining = None if self._budget is None else max(0, self._budget - images)
        return Usage(
            day=day_of(now),
            images=images,
            budget=self._budget,
            remaining=remaining,
            resets_at=resets_at(now),
        )


def _expires(now: datetime) -> int:
    return int((now + timedelta(days=USAGE_RETENTION_DAYS)).timestamp())
