"""A caller's usage of the upstream: images per (UTC) day, against its daily budget."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from pydantic import BaseModel, Field


def day_of(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def resets_at(moment: datetime) -> datetime:
    """When the day `moment` is in ends: the next midnight, UTC."""
    return datetime.combine(day_of(moment) + timedelta(days=1), time.min, tzinfo=UTC)


class Usage(BaseModel):
    """A caller's usage today, as `GET /v1/usage` shows it."""

    day: date = Field(description="The day (UTC) the figures are for.")
    images: int = Field(description="Images the caller's jobs asked the upstream for today.")
    budget: int | None = Field(description="The daily image budget; null: unlimited.")
    remaining: int | None = Field(description="Images left today; null: unlimited.")
    resets_at: datetime = Field(description="When the day ends and the count starts again.")
