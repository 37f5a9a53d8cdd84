"""How long the upstream takes for a request's shape, learned from the jobs the gateway followed:
when to ask first (the predicted first check) and when a job should be done (the ETA callers
see). Pure arithmetic, unit-tested; the samples live in the usage table
(`adapters.upstream_durations`).

- **Key** (`job_shape`): what the upstream's time depends on and the request says: the kind, the
  model, the steps, pixels x samples, `hires`, `upscale`, the LoRA and ControlNet counts. The
  prompt, seed, scheduler and the like are left out (they move the time little).
- **A sample** per finished job, in seconds since the upstream accepted it: `pending_after`, when
  the last status check that still saw PENDING was sent (the job was not done before then), and
  `done_by`, when the check that saw SUCCESS was answered (it was done by then). The true time
  lies between the two. A shape keeps its latest `SAMPLES_KEPT`.
- **The statistic**: the fresh samples (younger than `FRESH_FOR`, at least `MIN_SAMPLES` of
  them): `done_by` = the smallest `done_by`, `pending_after` = the largest `pending_after`.
  For an upstream that takes about the same time for a shape, every job was done by the first and
  still running at the second.
- **Fallback**: fewer fresh samples, or `done_by`s spread wider than `NOISY_SPREAD_*` (an upstream
  whose time for the shape varies that much cannot be predicted from it): no estimate; the job
  keeps today's schedule (a check a second after the submit, then every second).
- **The plan** (`first_check`): ask first halfway between the two bounds, never more than
  `FIRST_CHECK_LEAD_SECONDS` before `done_by` (a job of the shape was never done earlier, and a
  check that early may be a wasted one), then at `done_by` itself, then every second as today.
  A job as fast as the samples is seen by the second check (2 status GETs), within half the
  bounds' gap of finishing; each job's own check narrows the gap for the next. A slower job is
  asked every second after `done_by` (the estimate is never needed for correctness: the deadline
  still ends a job, the wait is capped by it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import AwareDatetime, Field

from imagegateway.domain.base import GatewayModel, JobKind

# Samples older than this say nothing of today's upstream (models move between servers, plans
# change): a shape whose samples are all older is unseen again.
FRESH_FOR = timedelta(days=3)
# How many fresh samples make an estimate ("after a few jobs of the shape").
MIN_SAMPLES = 3
# A shape keeps its latest samples, this many.
SAMPLES_KEPT = 8
# Too noisy to predict: the fresh samples' done_by spread wider than the larger of these.
NOISY_SPREAD_SECONDS = 3.0
NOISY_SPREAD_SHARE = 0.25
# The first check comes at most this long before done_by.
FIRST_CHECK_LEAD_SECONDS = 1.0


def job_shape(kind: JobKind, request: Mapping[str, Any]) -> str:
    """The key a job's duration is learned under (see the module's doc)."""
    width = int(request.get("width") or 0)
    height = int(request.get("height") or 0)
    samples = int(request.get("samples") or 1)
    loras = request.get("lora_models") or []
    controlnets = request.get("controlnets") or []
    parts = [
        kind.value,
        str(request.get("model_id", "")),
        f"steps={request.get('num_inference_steps') or 'default'}",
        f"px={width * height * samples if width and height else f'default*{samples}'}",
        f"hires={bool(request.get('hires'))}",
        f"upscale={request.get('upscale') or 'none'}",
        f"loras={len(loras) if isinstance(loras, list) else 1}",
        f"controlnets={len(controlnets) if isinstance(controlnets, list) else 1}",
    ]
    return "|".join(parts)


class DurationSample(GatewayModel):
    """One finished job of a shape: seconds since the upstream accepted it."""

    pending_after: float = Field(ge=0)
    done_by: float = Field(ge=0)
    at: AwareDatetime


class DurationEstimate(GatewayModel):
    """What the samples of a shape say, in seconds since the upstream accepts a job."""

    pending_after: float
    done_by: float
    samples: int

    @property
    def first_check_seconds(self) -> float:
        """When to ask first: halfway between the bounds, at most the lead before done_by."""
        halfway = (max(0.0, self.pending_after) + self.done_by) / 2
        return max(0.0, halfway, self.done_by - FIRST_CHECK_LEAD_SECONDS)

    def first_check(self, accepted_at: datetime) -> datetime:
        return accepted_at + timedelta(seconds=self.first_check_seconds)

    def done_at(self, accepted_at: datetime) -> datetime:
        return accepted_at + timedelta(seconds=self.done_by)


def sample_of(
    *, accepted_at: datetime, last_pending_at: datetime | None, done_at: datetime
) -> DurationSample:
    """A finished job's sample: done by `done_at`, still PENDING when `last_pending_at`'s check
    was sent (none: the upstream answered SUCCESS at once)."""
    done_by = max(0.0, (done_at - accepted_at).total_seconds())
    pending_after = 0.0
    if last_pending_at is not None:
        pending_after = min(done_by, max(0.0, (last_pending_at - accepted_at).total_seconds()))
    return DurationSample(
        pending_after=round(pending_after, 3), done_by=round(done_by, 3), at=done_at
    )


def estimate_of(samples: Iterable[DurationSample], *, now: datetime) -> DurationEstimate | None:
    """The shape's estimate, or None: too few fresh samples, or too noisy (module doc)."""
    fresh = [sample for sample in samples if now - sample.at <= FRESH_FOR]
    if len(fresh) < MIN_SAMPLES:
        return None
    done_by = min(sample.done_by for sample in fresh)
    spread = max(sample.done_by for sample in fresh) - done_by
    if spread > max(NOISY_SPREAD_SECONDS, NOISY_SPREAD_SHARE * done_by):
        return None
    pending_after = max(sample.pending_after for sample in fresh)
    if pending_after >= done_by:
        # A job was still running after another of the shape was done (the upstream's time
        # varies a little): that bound says nothing; the first check comes half the lead early.
        pending_after = max(0.0, done_by - FIRST_CHECK_LEAD_SECONDS)
    return DurationEstimate(pending_after=pending_after, done_by=done_by, samples=len(fresh))
