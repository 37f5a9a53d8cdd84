"""The usage table (adapters.usage_store) in moto, built from template.yaml: daily counts checked
against a budget, give-backs, the ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest

from imagegateway.adapters.usage_store import UsageStore
from imagegateway.domain.base import JobKind
from imagegateway.domain.errors import BudgetExceededError
from imagegateway.platform.settings import get_settings
from local.aws.resources import LocalStack

NOW = datetime(2026, 11, 26, 22, 30, tzinfo=UTC)
CALLER = "apikey:team-a"


def store(budget: int | None) -> UsageStore:
    settings = get_settings().model_copy(update={"caller_daily_image_budget": budget})
    return UsageStore(settings)


def test_a_budget_takes_what_fits_and_refuses_the_rest_with_its_reset(stack: LocalStack) -> None:
    # Given a daily budget of 3 images
    usage = store(3)
    # When a caller's jobs ask for 1 + 2 images, then 1 more
    usage.reserve(CALLER, 1, now=NOW)
    usage.reserve(CALLER, 2, now=NOW)
    with pytest.raises(BudgetExceededError) as refused:
        usage.reserve(CALLER, 1, now=NOW)
    # Then the third is refused, nothing more counted, with the next midnight (UTC) as reset
    assert refused.value.resets_at == datetime(2026, 11, 27, tzinfo=UTC)
    assert (refused.value.used, refused.value.budget) == (3, 3)
    today = usage.today(CALLER, now=NOW)
    assert (today.images, today.budget, today.remaining) == (3, 3, 0)
    # And another caller, and the next day, start from zero
    usage.reserve("apikey:team-b", 3, now=NOW)
    usage.reserve(CALLER, 3, now=NOW + timedelta(hours=2))


def test_a_days_first_job_bigger_than_the_budget_is_refused(stack: LocalStack) -> None:
    # Given a budget of 1 image and a caller that has spent nothing today (no day's count yet)
    usage = store(1)
    # When its first job of the day asks for 4
    with pytest.raises(BudgetExceededError) as refused:
        usage.reserve(CALLER, 4, now=NOW)
    # Then it is refused, and nothing was counted: the whole budget is still there
    assert (refused.value.used, refused.value.budget) == (0, 1)
    today = usage.today(CALLER, now=NOW)
    assert (today.images, today.budget, today.remaining) == (0, 1, 1)
    usage.reserve(CALLER, 1, now=NOW)


def test_a_budget_of_0_refuses_every_job_even_the_days_first(stack: LocalStack) -> None:
    # Given a budget of 0 (a caller meant to be blocked)
    usage = store(0)
    # When its first job of the day asks for 1 image / Then it is refused, nothing counted
    with pytest.raises(BudgetExceededError):
        usage.reserve(CALLER, 1, now=NOW)
    today = usage.today(CALLER, now=NOW)
    assert (today.images, today.budget, today.remaining) == (0, 0, 0)


def test_a_job_never_sent_gives_its_images_back(stack: LocalStack) -> None:
    usage = store(2)
    usage.reserve(CALLER, 2, now=NOW)
    usage.give_back(CALLER, 2, accepted_at=NOW)
    usage.reserve(CALLER, 2, now=NOW)
    assert usage.today(CALLER, now=NOW).images == 2


def test_without_a_budget_usage_is_counted_and_never_refused(stack: LocalStack) -> None:
    usage = store(None)
    for _ in range(5):
        usage.reserve(CALLER, 4, now=NOW)
    today = usage.today(CALLER, now=NOW)
    assert (today.images, today.budget, today.remaining) == (20, None, None)


def test_every_upstream_call_is_in_the_ledger(stack: LocalStack) -> None:
    # Given two calls for one caller
    usage = store(None)
    usage.record_call(CALLER, kind=JobKind.TEXT2IMAGE, images=2, job_id="job-1", now=NOW)
    usage.record_call(CALLER, kind=JobKind.INPAINTING, images=1, job_id="job-2", now=NOW)
    # Then the table holds one ledger item each, with caller, kind, images and time
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(
        get_settings().usage_table_name
    )
    items = table.query(
        KeyConditionExpression="#o = :o AND begins_with(entry, :call)",
        ExpressionAttributeNames={"#o": "owner"},
        ExpressionAttributeValues={":o": CALLER, ":call": "call#"},
    )["Items"]
    assert sorted((item["job_id"], item["kind"], int(item["images"])) for item in items) == [
        ("job-1", "text2image", 2),
        ("job-2", "inpainting", 1),
    ]
