"""How long the upstream took per shape of job (`domain.upstream_durations`), in the usage table:
one item per shape, `owner` = `#upstream`, `entry` = `shape#<job_shape>`, its `samples` a list of
the latest `SAMPLES_KEPT` `{pending_after, done_by, at}`. A finished job appends its sample with
one UpdateItem (no read), and, once the list is longer than kept, a second one drops the oldest
(conditional on the length; two jobs racing may drop one too many, which costs a sample, never
an answer). An accepted job reads the item with one eventually consistent GetItem (a sample a
second old may be missed; no harm). Items expire with the usage table's TTL a few days after
their last sample. No scan, no query.

The `#upstream` owner cannot be a caller's: every owner the gateway names has a prefix of letters
or is an IAM id (`domain.owners`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from imagegateway.adapters.aws_clients import dynamodb_table, error_code
from imagegateway.domain.upstream_durations import (
    FRESH_FOR,
    SAMPLES_KEPT,
    DurationEstimate,
    DurationSample,
    estimate_of,
)
from imagegateway.platform.settings import Settings

DURATIONS_OWNER = "#upstream"
SHAPE_PREFIX = "shape#"


class UpstreamDurations:
    """The shapes' samples. Without a usage table (a unit test's settings) nothing is learned
    and there is never an estimate."""

    def __init__(self, settings: Settings) -> None:
        self._table = (
            dynamodb_table(settings.usage_table_name) if settings.usage_table_name else None
        )

    def estimate(self, shape: str, *, now: datetime) -> DurationEstimate | None:
        if self._table is None:
            return None
        item = self._table.get_item(Key=_key(shape)).get("Item") or {}
        raw_samples: Any = item.get("samples") or []
        samples = [DurationSample.model_validate(_plain(raw)) for raw in raw_samples]
        return estimate_of(samples, now=now)

    def record(self, shape: str, sample: DurationSample) -> None:
        if self._table is None:
            return
        answer = self._table.update_item(
            Key=_key(shape),
            UpdateExpression="SET samples = list_append(if_not_exists(samples, :none), :one), "
            "expires_at = :expires",
            ExpressionAttributeValues={
                ":none": [],
                ":one": [
                    {
                        "pending_after": Decimal(str(sample.pending_after)),
                        "done_by": Decimal(str(sample.done_by)),
                        "at": sample.at.isoformat(),
                    }
                ],
                ":expires": int((sample.at + FRESH_FOR + timedelta(days=1)).timestamp()),
            },
            ReturnValues="UPDATED_NEW",
        )
        kept: Any = answer.get("Attributes", {}).get("samples") or []
        extra = len(kept) - SAMPLES_KEPT
        if extra > 0:
            self._drop_oldest(shape, extra)

    def _drop_oldest(self, shape: str, count: int) -> None:
        try:
            self._table.update_item(  # type: ignore[union-attr]
                Key=_key(shape),
                UpdateExpression="REMOVE " + ", ".join(f"samples[{i}]" for i in range(count)),
                ConditionExpression="size(samples) > :kept",
                ExpressionAttributeValues={":kept": SAMPLES_KEPT},
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise  # another job dropped them first: nothing to do


def _key(shape: str) -> dict[str, str]:
    return {"owner": DURATIONS_OWNER, "entry": SHAPE_PREFIX + shape}


def _plain(value: Any) -> Any:
    """DynamoDB's Decimals as floats, for the model."""
    if isinstance(value, dict):
        return {key: _plain(inner) for key, inner in value.items()}
    return float(value) if isinstance(value, Decimal) else value
