"""Benchmark 6: a simulated day at 10 M images, through the deployed design's limits.

A simulation of the figures, not a load test of this machine: 10 M single-image jobs over a day
whose rate follows a diurnal curve (a von Mises bump, peak PEAK_TO_MEAN x the mean), each minute
split over a mix of upstream durations and of shapes the gateway has learned or not, with the
predicted first check on, for both workflow types. Every per-job figure comes from the cost
section's measured run (state transitions, invocations and their durations, DynamoDB writes and
reads, S3 PUTs, events; `bench_job_cost.MeasuredParts`) and the predicted policy's own figures
(2 status GETs and ~1 s in one check invocation for a learned shape, a GET a second for an
unseen one); the few figures nothing here can measure (AWS and upstream latencies, callers'
status GETs) are ASSUMED_* constants, printed with the tables. For each minute it sums each
limit's use (a rate, or, for concurrency, rate x duration by Little's law) and prints the peak
minute's use against the limit's default quota (us-east-1), which binds first and what to raise,
and the day's cost.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from tests.bench._report import note, table, title
from tests.bench.bench_job_cost import (
    DDB_PER_RRU,
    DDB_READ_OPERATIONS,
    DDB_WRITE_OPERATIONS,
    EXPRESS_HAND_OVER_SECONDS,
    EXPRESS_MEMORY_GB,
    EXPRESS_PER_GB_SECOND,
    EXPRESS_PER_REQUEST,
    LAMBDA_PER_GB_SECOND,
    LAMBDA_PER_REQUEST,
    PREDICTED_EXTRA_READS,
    PREDICTED_GETS,
    PREDICTED_WAIT_SECONDS,
    SFN_PER_TRANSITION,
    MeasuredParts,
    _calls,
)

JOBS_PER_DAY = 10_000_000
PEAK_TO_MEAN = 3.0
MINUTES = 24 * 60
# The mix: upstream seconds -> share of the jobs (mean 39 s), and the share of jobs whose shape
# the gateway has learned (a busy gateway sees the same few shapes again and again).
DURATION_MIX = {10: 0.30, 30: 0.40, 60: 0.20, 120: 0.10}
LEARNED_SHARE = 0.95
# What this machine cannot measure: latencies a deployed function waits on.
ASSUMED_AWS_CALL_MS = 15.0  # a DynamoDB / S3 / Step Functions / EventBridge call, in-region
ASSUMED_UPSTREAM_CALL_MS = 300.0  # an upstream POST or status GET
ASSUMED_CALLER_GETS = 2.0  # status GETs per job by its caller (the rest wait for an event/webhook)
ASSUMED_AUTHORIZER_SHARE = 0.1  # API-key requests that miss the authorizer's cache
STRETCH_SECONDS = 100  # StatusCheckStretchSeconds' default

# Default quotas, us-east-1 (most are soft: raised on request).
QUOTAS = {
    "Step Functions StartExecution /s (Standard)": 300.0,  # refill; bucket 1,300
    "Step Functions StartExecution /s (Express)": 6000.0,
    "Step Functions state transitions /s (Standard)": 5000.0,
    "Lambda concurrent executions (account)": 1000.0,
    "Lambda concurrency: check_upstream": 1000.0,
    "Lambda concurrency: submit_upstream": 1000.0,
    "Lambda concurrency: store_images": 1000.0,
    "Lambda concurrency: submit (API)": 1000.0,
    "API Gateway requests /s (account)": 10000.0,
    "API Gateway requests /s (template ApiThrottlingRateLimit)": 20.0,
    "DynamoDB write units /s (per table, on demand)": 40000.0,
    "DynamoDB read units /s (per table, on demand)": 40000.0,
    "DynamoDB writes /s to one item (a caller's day count, a hot shape)": 1000.0,
    "EventBridge PutEvents /s": 10000.0,
    "upstream POSTs /s": math.nan,  # the upstream's plan: unknown here
    "upstream status GETs /s": math.nan,
}
RAISE = {
    "Step Functions StartExecution /s (Standard)": "ask for a higher StartExecution rate, or "
    "let the request queue (IntakeConcurrency) pace the starts",
    "Step Functions state transitions /s (Standard)": "ask for more, or WorkflowType=EXPRESS",
    "Lambda concurrent executions (account)": "ask for a higher account concurrency",
    "API Gateway requests /s (template ApiThrottlingRateLimit)": "raise ApiThrottlingRateLimit "
    "(and ApiThrottlingBurstLimit) in the template's parameters",
    "upstream POSTs /s": "the upstream's plan (SubmitConcurrency caps POSTs in flight)",
    "upstream status GETs /s": "the upstream's plan; the predicted first check keeps it low",
}


def diurnal_curve() -> list[float]:
    """Per minute, the rate as a multiple of the day's mean: exp(k cos), normalised to a mean of
    1, k solved so that the peak is PEAK_TO_MEAN."""

    def shape(k: float) -> list[float]:
        values = [math.exp(k * math.cos(2 * math.pi * m / MINUTES)) for m in range(MINUTES)]
        mean = statistics.fmean(values)
        return [value / mean for value in values]

    low, high = 0.0, 10.0
    for _ in range(60):
        middle = (low + high) / 2
        if max(shape(middle)) < PEAK_TO_MEAN:
            low = middle
        else:
            high = middle
    return shape(low)


@dataclass(frozen=True)
class JobLoad:
    """One job's use of every limited resource (counts; seconds held for concurrency)."""

    start_executions: float
    transitions: float
    check_seconds: float
    submit_upstream_seconds: float
    store_seconds: float
    submit_seconds: float
    api_requests: float
    ddb_write_units: float
    ddb_read_units: float
    events: float
    posts: float
    gets: float
    cost: float


def job_load(parts: MeasuredParts, t: int, learned: bool, express: bool) -> JobLoad:
    """A single-image job the upstream finishes in `t` s, from the measured parts."""
    single, model = parts.single, parts.model

    def mean_ms(function: str) -> float:
        values = [ms for job in single.jobs for ms in job.durations_ms.get(function, [])]
        return statistics.fmean(values) if values else 0.0

    def per_job(metric: Callable[..., float]) -> float:
        return single.mean(metric)

    writes = per_job(lambda job: _calls(job, "dynamodb", DDB_WRITE_OPERATIONS))
    reads = per_job(lambda job: _calls(job, "dynamodb", DDB_READ_OPERATIONS))
    write_units = per_job(lambda job: math.ceil(job.row_bytes / 1024)) * writes
    read_units = per_job(lambda job: math.ceil(job.row_bytes / 4096)) * reads
    read_units += PREDICTED_EXTRA_READS / 2 * learned
    aws = ASSUMED_AWS_CALL_MS / 1000
    upstream = ASSUMED_UPSTREAM_CALL_MS / 1000
    gets = PREDICTED_GETS if learned else t + 1
    check_ms = statistics.fmean(model.check_ms) / 1000
    if express:
        # One check invocation a second for an unseen shape; one (two GETs) for a learned one.
        invocations = 1 if learned else t + 1
        check_seconds = (
            check_ms + PREDICTED_WAIT_SECONDS + PREDICTED_GETS * upstream
            if learned
            else invocations * (check_ms + upstream + aws)
        )
        executions = 1 + int(t // EXPRESS_HAND_OVER_SECONDS)
        billed = t + 0.5 + mean_ms("submit_upstream") / 1000 + mean_ms("store_images") / 1000
        sfn = executions * EXPRESS_PER_REQUEST + billed * EXPRESS_MEMORY_GB * EXPRESS_PER_GB_SECOND
        transitions = 0.0
    else:
        invocations = max(1, math.ceil(t / STRETCH_SECONDS))
        check_seconds = (
            check_ms + PREDICTED_WAIT_SECONDS + PREDICTED_GETS * upstream
            if learned
            else t + check_ms
        )
        executions = 1
        transitions = model.transitions(invocations)
        sfn = transitions * SFN_PER_TRANSITION
    check_mb = parts.memory["check_upstream"]
    per_check_lambda = LAMBDA_PER_REQUEST
    fixed_without_sfn = parts.fixed_cost - model.fixed_transitions * SFN_PER_TRANSITION
    cost = (
        fixed_without_sfn
        + sfn
        + invocations * per_check_lambda
        + check_seconds * check_mb / 1024 * LAMBDA_PER_GB_SECOND
        + (PREDICTED_EXTRA_READS / 2 * DDB_PER_RRU if learned else 0.0)
    )
    return JobLoad(
        start_executions=executions,
        transitions=transitions,
        check_seconds=check_seconds,
        submit_upstream_seconds=mean_ms("submit_upstream") / 1000 + upstream + 3 * aws,
        store_seconds=mean_ms("store_images") / 1000 + upstream + 6 * aws,
        submit_seconds=mean_ms("submit") / 1000 + 4 * aws,
        api_requests=1 + ASSUMED_CALLER_GETS,
        ddb_write_units=write_units,
        ddb_read_units=read_units,
        events=1.0,
        posts=1.0,
        gets=gets,
        cost=cost,
    )


def mixed_load(parts: MeasuredParts, express: bool) -> tuple[JobLoad, dict[str, float]]:
    """The mix's mean job, and each duration-and-shape's share."""
    loads: list[tuple[float, JobLoad]] = []
    for t, share in DURATION_MIX.items():
        for learned, learned_share in ((True, LEARNED_SHARE), (False, 1 - LEARNED_SHARE)):
            loads.append((share * learned_share, job_load(parts, t, learned, express)))
    fields = JobLoad.__dataclass_fields__
    mean = JobLoad(
        **{name: sum(weight * getattr(load, name) for weight, load in loads) for name in fields}
    )
    return mean, {f"{t} s": share for t, share in DURATION_MIX.items()}


def uses(load: JobLoad, rate: float, express: bool) -> dict[str, float]:
    """Each limit's use at `rate` jobs per second."""
    concurrency = {
        "Lambda concurrency: check_upstream": rate * load.check_seconds,
        "Lambda concurrency: submit_upstream": rate * load.submit_upstream_seconds,
        "Lambda concurrency: store_images": rate * load.store_seconds,
        "Lambda concurrency: submit (API)": rate * load.submit_seconds,
    }
    start = "Express" if express else "Standard"
    result = {
        f"Step Functions StartExecution /s ({start})": rate * load.start_executions,
        "Lambda concurrent executions (account)": sum(concurrency.values())
        + rate * ASSUMED_CALLER_GETS * 0.05,  # job_status answers in ~50 ms
        **concurrency,
        "API Gateway requests /s (account)": rate * load.api_requests,
        "API Gateway requests /s (template ApiThrottlingRateLimit)": rate * load.api_requests,
        "DynamoDB write units /s (per table, on demand)": rate * load.ddb_write_units,
        "DynamoDB read units /s (per table, on demand)": rate * load.ddb_read_units,
        # The hottest single items: one caller sending everything (its day count), and one shape
        # taking a third of the traffic (its samples item).
        "DynamoDB writes /s to one item (a caller's day count, a hot shape)": rate,
        "EventBridge PutEvents /s": rate * load.events,
        "upstream POSTs /s": rate * load.posts,
        "upstream status GETs /s": rate * load.gets,
    }
    if not express:
        result["Step Functions state transitions /s (Standard)"] = rate * load.transitions
    return result


def run_simulated_day_bench(parts: MeasuredParts | None = None) -> None:
    title("6. A simulated day: 10 M single-image jobs through the deployed design's limits")
    if parts is None:
        from tests.bench.bench_job_cost import measured_parts

        note("measuring the per-job parts (the cost section's run, 2 jobs)")
        parts = measured_parts(2)
    curve = diurnal_curve()
    mean_rate = JOBS_PER_DAY / 86_400
    peak_minute = max(range(MINUTES), key=lambda m: curve[m])
    note(
        f"{JOBS_PER_DAY:,} jobs/day: {mean_rate:.0f}/s on average, {mean_rate * max(curve):.0f}/s "
        f"in the peak minute ({PEAK_TO_MEAN:g}x, a von Mises bump), "
        f"{mean_rate * min(curve):.0f}/s at the trough"
    )
    note(
        "mix: upstream "
        + ", ".join(f"{t} s {100 * share:.0f}%" for t, share in DURATION_MIX.items())
        + f"; {100 * LEARNED_SHARE:.0f}% of jobs of a learned shape (2 GETs, ~1 s of check), the "
        "rest unseen (a GET a second)"
    )
    note(
        f"assumed (not measurable here): {ASSUMED_AWS_CALL_MS:g} ms per AWS call, "
        f"{ASSUMED_UPSTREAM_CALL_MS:g} ms per upstream call, {ASSUMED_CALLER_GETS:g} caller "
        "status GETs per job; the rest is the cost section's measured run"
    )
    for express in (False, True):
        label = "EXPRESS" if express else "STANDARD"
        load, _ = mixed_load(parts, express)
        per_minute = [uses(load, mean_rate * factor, express) for factor in curve]
        peak = per_minute[peak_minute]
        mean_use = {name: statistics.fmean(minute[name] for minute in per_minute) for name in peak}
        rows: list[list[object]] = []
        binding: list[tuple[float, str]] = []
        for name, used in peak.items():
            quota = QUOTAS.get(name, math.nan)
            share = used / quota if quota == quota else math.nan
            over = [m for m in per_minute if quota == quota and m[name] > quota]
            if share == share:
                binding.append((share, name))
            rows.append(
                [
                    name,
                    f"{mean_use[name]:,.0f}",
                    f"{used:,.0f}",
                    "-" if quota != quota else f"{quota:,.0f}",
                    "-" if share != share else f"{100 * share:.0f}%",
                    f"{len(over)}" if quota == quota else "-",
                ]
            )
        print()
        print(f"  {label}, the predicted first check on: each limit at the day's mean and peak")
        table(
            ["limit", "mean", "peak minute", "default quota", "peak use", "minutes over"],
            rows,
            indent=2,
        )
        binding.sort(reverse=True)
        first = [f"{name} ({100 * share:.0f}%)" for share, name in binding if share > 1]
        note("binds (over its default at the peak): " + ("; ".join(first) or "nothing"))
        for share, name in binding:
            if share > 1 and name in RAISE:
                note(f"  {name}: {RAISE[name]}")
        day_cost = JOBS_PER_DAY * load.cost
        note(
            f"the day's AWS cost: ${day_cost:,.0f} (${load.cost * 1000:.4f} per 1,000 jobs over "
            f"the mix); upstream: {JOBS_PER_DAY:,} POSTs, {JOBS_PER_DAY * load.gets:,.0f} status "
            f"GETs ({load.gets:.1f} per job; a GET a second would be "
            f"{sum(share * (t + 1) for t, share in DURATION_MIX.items()):.1f})"
        )
    note(
        "DynamoDB's hot items: a caller's day count takes a write per job (1,000 WCU/s per item: "
        "one caller over ~1,000 jobs/s needs its budget sharded); a shape's samples item a write "
        "per finished job of it and an eventually consistent read per submit and acceptance"
    )
    note(
        "API Gateway and S3 PUTs per prefix (jobs/<id>/, distinct) are far from their limits; "
        "EventBridge ~1 event per job; cost excludes the upstream's own price"
    )
