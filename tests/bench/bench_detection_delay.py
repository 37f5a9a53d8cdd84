"""Benchmark 3: detection delay — how long after the upstream finished a job does its caller see
SUCCESS, and how many upstream status calls did the gateway make meanwhile.

Each polling policy is its own local stack (`local.stack.StackProcess`: free ports, the fake
upstream, the deployed template's settings but for the policy's environment overrides and
LOG_LEVEL=WARNING). The fake is scripted per model id (`POST /__fake__/script` with
`completes_after_seconds`), one model id per job, so the fake's per-job stats
(`GET /__fake__/stats` → `jobs[<upstream id>]`) are matched to the job by model id. Jobs are
submitted over HTTP (`POST /sd/text2image/v1`) and a caller GETs the status every 0.25 s until
SUCCESS, from 1 s before the upstream can be done (CALLER_LEAD_SECONDS: earlier GETs cannot see
SUCCESS, and a dozen callers polling from submit on loaded the 2-core machine enough to add
0.3-0.7 s to the in-function poller's delays):

    delay = the time the caller first sees SUCCESS - the fake's `completed_at` for that job

so it includes the store step and the caller's own sampling (<= 0.25 s, ~0.13 s on average).
Jobs run in waves: one duration per wave, its jobs (4) at once, so every policy is measured at
the same, modest concurrency: the whole local stack is one Python process on this 2-core machine,
where 12 jobs at once added up to ~0.5 s to the in-function poller's delays. The 60 s poller runs
every duration in one wave (2 jobs each): one 60 s wait instead of three, and its delays are
~50 s whatever the load.

The predicted first check (issue #23) learns per request shape: a policy with it on
(`Policy.learns`) first runs LEARNING_JOBS jobs of each duration's shape (one model id per
duration, not measured), then the measured wave: `jobs` more of that shape ("learned") beside
UNSEEN_JOBS of shapes never seen (a model id each, "unseen"). A policy without it runs the same
measured wave (the same load), its "learned" jobs being just jobs of a shape it does not learn.
Jobs are matched to the fake's stats by seed (several jobs share a model id).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from tests.bench._report import note, table, title

DURATIONS = (3, 8, 15)
CALLER_INTERVAL_SECONDS = 0.25
# The caller's first GET: this long before the upstream can be done (T s after the caller's own
# submit, since the upstream's submit comes later, from the workflow). Earlier GETs cannot see
# SUCCESS; skipping them keeps a dozen callers' GETs (the local API serves one at a time, in the
# stack's one process on this 2-core machine) from slowing the workflow being measured.
CALLER_LEAD_SECONDS = 1.0
SUBMIT_PATH = "/sd/text2image/v1"
STATUS_PATH = "/sd/text2image/v1/status/{id}"
REQUEST_EVENT = Path(__file__).resolve().parents[2] / "events" / "text2image_request.json"
# Targets of issue #10.
TARGET_MEAN_DELAY_SECONDS = 1.5
TARGET_EXTRA_CALLS = 2  # status calls per job <= upstream seconds + 2
# Targets of issue #23: over a mix of learned and unseen shapes, and per job of a learned shape.
TARGET_PREDICTED_MEAN_DELAY_SECONDS = 0.6
TARGET_LEARNED_CALLS = 3
# Jobs of a shape that the gateway follows to the end before the measured ones (the estimate
# needs 3), and jobs of never-seen shapes in each measured wave.
LEARNING_JOBS = 3
UNSEEN_JOBS = 2
STRETCH_VARIABLE = "UPSTREAM_POLL_STRETCH_SECONDS"
# Timing settings a developer's shell might hold: never inherited by a policy's stack.
TIMING_VARIABLES = (
    "POLL_INTERVAL_SECONDS",
    "POLL_MAX_INTERVAL_SECONDS",
    "JOB_DEADLINE_SECONDS",
    "UPSTREAM_POLL_CADENCE_SECONDS",
    STRETCH_VARIABLE,
    "FAKE_PENDING_POLLS",
    "RECONCILE_INTERVAL_SECONDS",
    "WORKFLOW_TYPE",
    "PREDICTED_FIRST_CHECK",
)
# What `make bench` runs unless DELAY_POLICIES says otherwise (DELAY_POLICIES=all: every one).
DEFAULT_POLICIES = ("predicted", "today", "express")


@dataclass(frozen=True)
class Policy:
    key: str
    label: str
    environment: dict[str, str]
    # False: one wave per duration (its jobs at once); True: every duration's jobs in one wave.
    together: bool = False
    # At most this many jobs per duration (None: as many as asked).
    max_jobs: int | None = None
    # The predicted first check is on: learning waves run first (see the module's doc).
    learns: bool = False


@dataclass
class JobResult:
    duration: int
    model_id: str
    seed: int = 0
    # True: a job of the duration's shape (learned, for a policy that learns); False: unseen.
    learned: bool = True
    measured: bool = True
    job_id: str = ""
    seen_at: float = 0.0  # wall clock (time.time) when the caller first saw SUCCESS
    caller_gets: int = 0
    error: str = ""
    completed_at: float | None = None
    status_checks: int | None = None
    # When the gateway's check saw SUCCESS (the view's timings.upstream_completed_at).
    gateway_seen_at: float | None = None

    @property
    def detection(self) -> float | None:
        """The gateway's own part: its SUCCESS check - the fake's completed_at (no store step,
        no caller sampling)."""
        if self.gateway_seen_at is None or self.completed_at is None:
            return None
        return self.gateway_seen_at - self.completed_at

    @property
    def delay(self) -> float | None:
        if self.error or self.completed_at is None:
            return None
        return self.seen_at - self.completed_at


@dataclass
class PolicyRun:
    policy: Policy
    jobs: list[JobResult] = field(default_factory=list)
    start_seconds: float = 0.0
    run_seconds: float = 0.0
    error: str = ""
    stack_tail: str = ""  # the stack's last output lines, when something went wrong
    load: str = ""  # the machine's 1-minute load average when the jobs were done


def _settings_defaults() -> tuple[int, int, float, bool]:
    from imagegateway.domain.polling import BACKOFF_FACTOR
    from imagegateway.platform.settings import Settings

    fields = Settings.model_fields
    interval = int(fields["poll_interval_seconds"].default)
    maximum = int(fields["poll_max_interval_seconds"].default)
    return interval, maximum, BACKOFF_FACTOR, STRETCH_VARIABLE.lower() in fields


def policies() -> list[Policy]:
    interval, maximum, factor, _ = _settings_defaults()
    from local.aws.template import load_template

    stretch = load_template()["Parameters"]["StatusCheckStretchSeconds"]["Default"]
    # The state machine's backoff (before): one status GET per check invocation.
    backoff = {STRETCH_VARIABLE: "0"}
    return [
        Policy(
            "predicted",
            "predicted first check, the default now (STANDARD)",
            {},
            learns=True,
        ),
        Policy(
            "today",
            f"in-function, before ({STRETCH_VARIABLE}={stretch}, PREDICTED_FIRST_CHECK=false)",
            {"PREDICTED_FIRST_CHECK": "false"},
        ),
        Policy(
            "express",
            "predicted first check, WorkflowType=EXPRESS",
            {"WORKFLOW_TYPE": "EXPRESS"},
            learns=True,
        ),
        Policy(
            "express-before",
            "WorkflowType=EXPRESS before (a check a second, PREDICTED_FIRST_CHECK=false)",
            {"WORKFLOW_TYPE": "EXPRESS", "PREDICTED_FIRST_CHECK": "false"},
        ),
        Policy(
            "backoff",
            f"backoff, before ({interval} s, x{factor:g}, max {maximum} s)",
            dict(backoff),
        ),
        Policy(
            "fixed5",
            "fixed 5 s",
            {**backoff, "POLL_INTERVAL_SECONDS": "5", "POLL_MAX_INTERVAL_SECONDS": "5"},
        ),
        Policy(
            "aws60",
            "AWS sample 60 s",
            {**backoff, "POLL_INTERVAL_SECONDS": "60", "POLL_MAX_INTERVAL_SECONDS": "60"},
            max_jobs=2,
            together=True,
        ),
    ]


def waves(policy: Policy, jobs: int) -> list[list[JobResult]]:
    """The jobs run concurrently, wave after wave (learning waves first where the policy
    learns; one model id per duration's shape, one per unseen job; a seed per job)."""
    per = max(1, min(jobs, policy.max_jobs or jobs))
    seeds = iter(range(1000, 100000))
    key = policy.key

    def job(duration: int, learned: bool, measured: bool = True) -> JobResult:
        seed = next(seeds)
        model = f"bench-{key}-{duration}s" if learned else f"bench-{key}-{duration}s-new-{seed}"
        return JobResult(duration, model, seed=seed, learned=learned, measured=measured)

    if policy.together:
        return [[job(duration, True) for _ in range(per) for duration in DURATIONS]]
    result: list[list[JobResult]] = []
    for duration in DURATIONS:
        if policy.learns:
            result.append([job(duration, True, measured=False) for _ in range(LEARNING_JOBS)])
        measured = [job(duration, True) for _ in range(per)]
        measured += [job(duration, False) for _ in range(UNSEEN_JOBS)]
        result.append(measured)
    return result


# --------------------------------------------------------------------------- one stack


@contextlib.contextmanager
def _without_inherited(names: Sequence[str]) -> Iterator[None]:
    """StackProcess passes this process's environment on: hide the timing settings."""
    saved = {name: os.environ.pop(name) for name in names if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def _request_body(model_id: str, seed: int) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(REQUEST_EVENT.read_text(encoding="utf-8"))
    body.update({"model_id": model_id, "seed": seed, "samples": 1})
    return body


def _follow(gateway: str, job: JobResult, seed: int, timeout: float) -> JobResult:
    """Submit, then GET the status every 0.25 s (a fixed cadence) until SUCCESS, from
    CALLER_LEAD_SECONDS before the upstream can have finished."""
    with requests.Session() as session:
        try:
            answer = session.post(
                gateway + SUBMIT_PATH,
                data=json.dumps(_request_body(job.model_id, seed)),
                headers={"Content-Type": "application/json"},
                timeout=30,
            )
            if answer.status_code not in (200, 202):
                job.error = f"submit answered {answer.status_code}: {answer.text[:200]}"
                return job
            view = answer.json()
            job.job_id = view["id"]
            if view.get("status") == "SUCCESS":
                job.seen_at = time.time()
                return job
            deadline = time.monotonic() + timeout
            next_at = time.monotonic() + max(0.0, job.duration - CALLER_LEAD_SECONDS)
            time.sleep(max(0.0, next_at - time.monotonic()))
            while True:
                response = session.get(gateway + STATUS_PATH.format(id=job.job_id), timeout=30)
                seen = time.time()
                job.caller_gets += 1
                view = response.json() if response.status_code == 200 else {}
                status = view.get("status")
                if status == "SUCCESS":
                    job.seen_at = seen
                    with contextlib.suppress(KeyError, TypeError, ValueError):
                        job.gateway_seen_at = datetime.fromisoformat(
                            view["timings"]["upstream_completed_at"]
                        ).timestamp()
                    return job
                if status not in ("PENDING", None) or time.monotonic() > deadline:
                    job.error = f"status {status or response.status_code} after {job.caller_gets}"
                    return job
                next_at += CALLER_INTERVAL_SECONDS
                time.sleep(max(0.0, next_at - time.monotonic()))
        except (requests.RequestException, ValueError, KeyError) as exc:
            job.error = f"{type(exc).__name__}: {exc}"
            return job


def _stack_environment(policy: Policy, outputs_file: Path) -> dict[str, str]:
    return {
        "LOG_LEVEL": "WARNING",
        "STACK_OUTPUTS_FILE": str(outputs_file),
        "FAKE_UPSTREAM_API_KEY": f"bench-{secrets.token_hex(8)}",
        # Never the real upstream, whatever this shell holds.
        "IMAGEPIPELINE_API_KEY": "",
        "UPSTREAM_BASE_URL": "",
        **policy.environment,
    }


def run_policy(policy: Policy, jobs: int) -> PolicyRun:
    from local.stack import StackError, StackProcess

    run = PolicyRun(policy)
    outputs = Path(tempfile.mkdtemp(prefix="bench-delay-")) / "stack-outputs.json"
    process = StackProcess(environment=_stack_environment(policy, outputs))
    started = time.perf_counter()
    try:
        with _without_inherited([n for n in TIMING_VARIABLES if n not in policy.environment]):
            urls = process.start(timeout=90)
    except StackError as exc:
        run.error = f"the stack did not start: {str(exc).splitlines()[0]}"
        return run
    run.start_seconds = time.perf_counter() - started
    started = time.perf_counter()
    try:
        with requests.Session() as session:
            for wave in waves(policy, jobs):
                durations = [job.duration for job in wave]
                for job in {job.model_id: job for job in wave}.values():
                    scripted = session.post(
                        urls.upstream + "/__fake__/script",
                        json={"model_id": job.model_id, "completes_after_seconds": job.duration},
                        timeout=10,
                    )
                    scripted.raise_for_status()
                timeout = (
                    120.0
                    + max(durations)
                    + 2 * int(policy.environment.get("POLL_MAX_INTERVAL_SECONDS", "30"))
                )
                with ThreadPoolExecutor(max_workers=len(wave)) as pool:
                    futures = [
                        pool.submit(_follow, urls.gateway, job, job.seed, timeout) for job in wave
                    ]
                    run.jobs += [future.result() for future in futures]
            stats = session.get(urls.upstream + "/__fake__/stats", timeout=10).json()
        by_seed = {
            (entry.get("request") or {}).get("seed"): entry for entry in stats["jobs"].values()
        }
        for job in run.jobs:
            entry = by_seed.get(job.seed)
            if entry is None:
                job.error = job.error or "the fake upstream never saw the job"
                continue
            job.completed_at = entry.get("completed_at")
            job.status_checks = int(entry.get("status_checks", 0))
            if job.completed_at is None and not job.error:
                job.error = "the fake upstream has no completed_at"
    except (requests.RequestException, ValueError, KeyError) as exc:
        run.error = f"{type(exc).__name__}: {str(exc)[:200]}"
    finally:
        run.run_seconds = time.perf_counter() - started
        with contextlib.suppress(OSError):
            run.load = f"{os.getloadavg()[0]:.1f}"
        child = getattr(process, "_process", None)  # StackProcess's Popen: is it still running?
        running = child is None or child.poll() is None
        code = process.stop()
        if not running:
            # It stopped by itself (or something killed it): say how, with its last words.
            run.error = f"the stack exited early with {code}; " + (run.error or "")
            run.stack_tail = process.output(last=8)
        elif run.error or any(job.error for job in run.jobs):
            run.stack_tail = process.output(last=8)
    return run


# --------------------------------------------------------------------------- report


def p95(values: Sequence[float]) -> float:
    """Nearest-rank 95th percentile (the maximum for fewer than 20 values)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def _ok(flag: bool) -> str:
    return "yes" if flag else "NO"


GROUPS = ("learned", "unseen")


def summarise(run: PolicyRun, duration: int, group: str | None = None) -> dict[str, Any] | None:
    """The measured jobs of one duration (and group: `learned`, `unseen`, None for both)."""
    jobs = [
        j
        for j in run.jobs
        if j.duration == duration
        and j.measured
        and (group is None or j.learned == (group == "learned"))
    ]
    delays = [d for j in jobs if (d := j.delay) is not None]
    calls = [j.status_checks for j in jobs if j.status_checks is not None and not j.error]
    detections = [d for j in jobs if (d := j.detection) is not None]
    if not delays:
        return None
    return {
        "detection": statistics.fmean(detections) if detections else float("nan"),
        "jobs": len(delays),
        "failed": len(jobs) - len(delays),
        "delays": delays,
        "mean": statistics.fmean(delays),
        "median": statistics.median(delays),
        "p95": p95(delays),
        "calls_mean": statistics.fmean(calls) if calls else float("nan"),
        "calls_max": max(calls) if calls else 0,
    }


def _groups(run: PolicyRun) -> list[str | None]:
    return list(GROUPS) if not run.policy.together else [None]


def print_results(runs: Sequence[PolicyRun]) -> None:
    rows: list[list[object]] = []
    summary: list[list[object]] = []
    for run in runs:
        if run.error and not run.jobs:
            rows.append([run.policy.label, "-", "-", 0, "-", "-", "-", "-", "-", "-"])
            summary.append([run.policy.label, *["-"] * 9, "see below"])
            continue
        means: list[float] = []
        learned_means: list[float] = []
        every_delay: list[float] = []
        learned_calls: list[float] = []
        learned_max = 0
        calls_ok = True
        for duration in DURATIONS:
            for group in _groups(run):
                figures = summarise(run, duration, group)
                label = group or "all"
                if figures is None:
                    rows.append(
                        [run.policy.label, duration, label, 0, "-", "-", "-", "-", "-", "-"]
                    )
                    calls_ok = False
                    continue
                every_delay += figures["delays"]
                if group == "learned":
                    learned_means.append(figures["mean"])
                    learned_calls.append(figures["calls_mean"])
                    learned_max = max(learned_max, figures["calls_max"])
                calls_ok &= figures["calls_max"] <= duration + TARGET_EXTRA_CALLS
                count = figures["jobs"]
                rows.append(
                    [
                        run.policy.label,
                        duration,
                        label,
                        f"{count}+{figures['failed']} failed" if figures["failed"] else count,
                        f"{figures['mean']:.2f}",
                        f"{figures['median']:.2f}",
                        f"{figures['p95']:.2f}",
                        f"{figures['detection']:.2f}",
                        f"{figures['calls_mean']:.1f}",
                        figures["calls_max"],
                    ]
                )
            both = summarise(run, duration)
            if both is not None:
                means.append(both["mean"])
        mix = statistics.fmean(means) if len(means) == len(DURATIONS) else None
        learned_mix = statistics.fmean(learned_means) if learned_means else None
        summary.append(
            [
                run.policy.label,
                f"{mix:.2f}" if mix is not None else "-",
                f"{p95(every_delay):.2f}" if every_delay else "-",
                f"{learned_mix:.2f}" if learned_mix is not None else "-",
                f"{statistics.fmean(learned_calls):.1f} (max {learned_max})"
                if learned_calls
                else "-",
                _ok(mix is not None and mix <= TARGET_PREDICTED_MEAN_DELAY_SECONDS),
                _ok(bool(learned_calls) and learned_max <= TARGET_LEARNED_CALLS),
                _ok(calls_ok),
                f"{run.start_seconds:.0f} + {run.run_seconds:.0f}",
                run.load or "-",
                "see below" if run.error else "",
            ]
        )
    print()
    print("  Per upstream duration T and shape (learned: the duration's shape, after")
    print(f"  {LEARNING_JOBS} jobs of it where the policy learns; unseen: a shape never seen)")
    table(
        [
            "policy",
            "T s",
            "shape",
            "jobs",
            "mean delay s",
            "median s",
            "p95 delay s",
            "gateway saw it s",
            "status GETs/job",
            "max GETs",
        ],
        rows,
        indent=2,
    )
    print()
    print(
        f"  Per policy against issue #23's targets: mean delay <= "
        f"{TARGET_PREDICTED_MEAN_DELAY_SECONDS} s over the mix (3, 8, 15 s weighted"
    )
    print(
        f"  equally; learned and unseen jobs together), <= {TARGET_LEARNED_CALLS} status GETs "
        "per job of a learned shape; and #10's calls <= T + 2"
    )
    table(
        [
            "policy",
            "mix mean delay s",
            "p95 s (all)",
            "learned mean s",
            "GETs/learned job",
            f"mean <= {TARGET_PREDICTED_MEAN_DELAY_SECONDS} s",
            f"GETs <= {TARGET_LEARNED_CALLS}",
            "calls <= T+2",
            "stack s (start + jobs)",
            "load avg",
            "note",
        ],
        summary,
        indent=2,
    )


def run_detection_delay_bench(jobs: int = 4) -> None:
    title("3. Detection delay: upstream done -> the caller sees SUCCESS (local stack, HTTP)")
    started = time.perf_counter()
    # DELAY_POLICIES=today,express runs only those (names as in policies()).
    wanted = [name for name in os.environ.get("DELAY_POLICIES", "").split(",") if name]
    wanted = wanted or list(DEFAULT_POLICIES)
    chosen = [policy for policy in policies() if "all" in wanted or policy.key in wanted]
    note(
        "one local stack per policy (python -m local.stack on free ports, fake upstream, "
        "LOG_LEVEL=WARNING, otherwise the deployed template's settings)"
    )
    note(
        f"upstream durations {', '.join(f'{d} s' for d in DURATIONS)} (fake: "
        "completes_after_seconds, one model id per job); a caller GETs the status every "
        f"{CALLER_INTERVAL_SECONDS} s until SUCCESS, from T - {CALLER_LEAD_SECONDS:g} s after its "
        "submit (no earlier GET can see SUCCESS; skipping them keeps a dozen callers from loading "
        "the stack they measure)"
    )
    note(
        "delay = caller first sees SUCCESS - the fake's completed_at (so it includes the store "
        "step and up to 0.25 s of the caller's sampling); p95 is nearest-rank (= the max here)"
    )
    layout = []
    for policy in chosen:
        shape = waves(policy, jobs)
        at_once = "/".join(
            f"{len(wave)}{'' if all(j.measured for j in wave) else ' learning'}" for wave in shape
        )
        layout.append(f"{policy.key} {at_once}")
    note(
        "jobs at once per wave: " + "; ".join(layout) + " (one duration per wave, except the 60 s "
        "poller: the same modest load for every policy, the stack being one process)"
    )
    note("status calls/job = the fake's per-job status_checks (every upstream status GET)")
    note(
        "gateway saw it = the view's timings.upstream_completed_at (the SUCCESS check's answer) "
        "- the fake's completed_at: the delay without the store step and the caller's sampling"
    )
    runs = []
    for policy in chosen:
        run = run_policy(policy, jobs)
        runs.append(run)
        failed = [j for j in run.jobs if j.error]
        if failed:
            note(f"{policy.key}: {len(failed)} job(s) failed, e.g. {failed[0].error}")
    print_results(runs)
    for run in runs:
        if run.error:
            note(f"{run.policy.key}: not fully measured: {run.error}")
        if run.stack_tail:
            note(f"{run.policy.key}: the stack's last lines:")
            for line in run.stack_tail.splitlines():
                note(f"  {line[:160]}")
    note(f"section wall time {time.perf_counter() - started:.0f} s")
