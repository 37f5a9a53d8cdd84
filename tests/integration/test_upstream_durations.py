"""The upstream's durations per shape (adapters.upstream_durations) in the usage table, in moto,
built from template.yaml: samples appended, the latest kept, the estimate read back; a caller's
usage is untouched."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from imagegateway.adapters.upstream_durations import UpstreamDurations
from imagegateway.adapters.usage_store import UsageStore
from imagegateway.domain.upstream_durations import SAMPLES_KEPT, DurationSample
from imagegateway.platform.settings import get_settings
from local.aws.resources import LocalStack

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SHAPE = "text2image|sd1.5|steps=30|px=262144|hires=False|upscale=none|loras=0|controlnets=0"


def sample(done_by: float, at: datetime = NOW) -> DurationSample:
    return DurationSample(pending_after=done_by - 0.5, done_by=done_by, at=at)


def test_samples_make_an_estimate_and_only_the_latest_are_kept(stack: LocalStack) -> None:
    durations = UpstreamDurations(get_settings())
    # Given no sample of a shape / Then there is no estimate
    assert durations.estimate(SHAPE, now=NOW) is None
    # When jobs of it took 30 s, then (SAMPLES_KEPT of them later) 12.x s
    for _ in range(3):
        durations.record(SHAPE, sample(30.0))
    assert durations.estimate(SHAPE, now=NOW) is not None
    for index in range(SAMPLES_KEPT):
        durations.record(SHAPE, sample(12.0 + index / 10))
    # Then the estimate is the latest samples' (the 30 s ones dropped), done by the fastest
    estimate = durations.estimate(SHAPE, now=NOW)
    assert estimate is not None
    assert (estimate.samples, estimate.done_by) == (SAMPLES_KEPT, 12.0)
    # And the item stays small (one write unit per append), trimmed as it grows
    item = boto3_item(SHAPE)
    assert SAMPLES_KEPT <= len(item["samples"]) < 2 * SAMPLES_KEPT
    assert len(json.dumps(item, default=str)) < 1024
    # And another shape, and a caller's usage, know nothing of it
    assert durations.estimate(SHAPE + "x", now=NOW) is None
    assert UsageStore(get_settings()).today("apikey:team-a", now=NOW).images == 0


def boto3_item(shape: str) -> dict[str, Any]:
    table = boto3.resource("dynamodb").Table(get_settings().usage_table_name)
    item: dict[str, Any] = table.get_item(Key={"owner": "#upstream", "entry": "shape#" + shape})[
        "Item"
    ]
    return item


def test_stale_samples_make_no_estimate(stack: LocalStack) -> None:
    durations = UpstreamDurations(get_settings())
    for _ in range(3):
        durations.record(SHAPE, sample(10.0, at=NOW - timedelta(days=5)))
    assert durations.estimate(SHAPE, now=NOW) is None
