"""How long the upstream took per shape of job (`domain.upstream_durations`), in the usage table:
one item per shape, `owner` = `#upstream`, `entry` = `shape#<job_shape>`, its `samples` a list of
`"<pending_after> <done_by> <epoch seconds>"` strings, the latest last. A finished job appends its
sample with one UpdateItem (no read); once the list reaches TRIM_AT, a second one drops all but
the latest SAMPLES_KEPT (conditional on the length: two jobs racing trim once). The estimate is
read from the latest SAMPLES_KEPT. An accepted job reads the item with one eventually
consistent GetItem (a sample a second old may be missed; no harm). Items expire with the usage
table's TTL a few days after their last sample. No scan, no query.

The `#upstream` owner cannot be a caller's: every owner the gateway names has a prefix of letters
or is an IAM id (`domain.owners`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
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


# The list is trimmed back to SAMPLES_KEPT once it is this long: one extra write per
# SAMPLES_KEPT jobs, and the item stays under 1 KB (one write unit per append).
TRIM_AT = 2 * SAMPLES_KEPT


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
        samples = [_parsed(str(raw)) for raw in raw_samples[-SAMPLES_KEPT:]]
        return estimate_of([sample for sample in samples if sample is not None], now=now)

    def record(self, shape: str, sample: DurationSample) -> None:
        if self._table is None:
            return
        answer = self._table.update_item(
            Key=_key(shape),
            UpdateExpression="SET samples = list_append(if_not_exists(samples, :none), :one), "
            "expires_at = :expires",
            ExpressionAttributeValues={
                ":none": [],
                ":one": [_text(sample)],
                ":expires": int((sample.at + FRESH_FOR + timedelta(days=1)).timestamp()),
            },
            ReturnValues="UPDATED_NEW",
        )
        kept: Any = answer.get("Attributes", {}).get("samples") or []
        if len(kept) >= TRIM_AT:
            self._drop_oldest(shape, len(kept) - SAMPLES_KEPT)

    def _drop_oldest(self, shape: str, count: int) -> None:
        try:
            self._table.update_item(  # type: ignore[union-attr]
                Key=_key(shape),
                UpdateExpression="REMOVE " + ", ".join(f"samples[{i}]" for i in range(count)),
                ConditionExpression="size(samples) >= :trim",
                ExpressionAttributeValues={":trim": TRIM_AT},
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise  # another job trimmed it first: nothing to do


def _key(shape: str) -> dict[str, str]:
    return {"owner": DURATIONS_OWNER, "entry": SHAPE_PREFIX + shape}


def _text(sample: DurationSample) -> str:
    """A sample as `<pending_after> <done_by> <epoch seconds>`: ~25 bytes, where a map with its
    attribute names would be ~70 (the item's size is what a write is billed by)."""
    return f"{sample.pending_after:.3f} {sample.done_by:.3f} {int(sample.at.timestamp())}"


def _parsed(text: str) -> DurationSample | None:
    try:
        pending_after, done_by, epoch = text.split()
        return DurationSample(
            pending_after=float(pending_after),
            done_by=float(done_by),
            at=datetime.fromtimestamp(int(epoch), UTC),
        )
    except ValueError:
        return None  # not a sample this code wrote: ignored
