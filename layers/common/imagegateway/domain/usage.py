"""A caller's usage of the upstream: images per (UTC) day, against its daily budget."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from pydantic import BaseModel, Field

from imagegateway.domain.errors import BudgetExceededError


def day_of(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def resets_at(moment: datetime) -> datetime:
    """When the day `moment` is in ends: the next midnight, UTC."""
    return datetime.combine(day_of(moment) + timedelta(days=1), time.min, tzinfo=UTC)


def fits(images: int, *, used: int, budget: int | None) -> bool:
    """Whether a job of `images` fits a day that has `used` of `budget` (None: unlimited). A
    day with nothing spent yet is `used` = 0, never a pass: a job bigger than the whole budget
    (any job, with a budget of 0) never fits."""
    return budget is None or used + images <= budget


def budget_exceeded(images: int, *, used: int, budget: int, now: datetime) -> BudgetExceededError:
    """The refusal of a job that does not fit, with when the budget resets. A job bigger than
    the whole budget never fits, reset or not: the message says so (the code is the same)."""
    if images > budget:
        message = (
            f"the job asks for {images} images, more than the whole daily budget of {budget}: "
            "it never fits; ask for fewer"
        )
    else:
        message = (
            f"the daily budget of {budget} images is spent ({used} used today, "
            f"{images} asked); it resets at {resets_at(now).isoformat()}"
        )
    return BudgetExceededError(
        message,
        budget=budget,
        used=used,
        resets_at=resets_at(now),
    )


class Usage(BaseModel):
    """A caller's usage today, as `GET /v1/usage` shows it."""

    day: date = Field(description="The day (UTC) the figures are for.")
    images: int = Field(description="Images the caller's jobs asked the upstream for today.")
    budget: int | None = Field(description="The daily image budget; null: unlimited.")
    remaining: int | None = Field(description="Images left today; null: unlimited.")
    resets_at: datetime = Field(description="When the day ends and the count starts again.")
