"""Benchmark 2: what one job costs on AWS.

Jobs run through the real statemachine/ file in moto (execute_state_machine), its Lambda tasks
dispatched to the real handlers in-process, against the fake upstream over HTTP. Per job it
counts state transitions (StateEntered events), Lambda invocations and their in-process
durations, the AWS API calls the gateway makes (seen at moto's botocore stubber: S3 PUTs,
DynamoDB writes and reads, Secrets Manager, Step Functions) and the upstream calls, then prices
them with list prices printed alongside. Finally it projects the cost for jobs the upstream
finishes in T seconds under the default polling policy (imagegateway.domain.polling).
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest

from tests.bench._report import median, note, per_1000, table, title

# --- list prices (us-east-1, on-demand, no free tier) ----------------------------------------
SFN_PER_TRANSITION = 0.025 / 1000  # Step Functions Standard
EXPRESS_PER_REQUEST = 1.00 / 1_000_000  # Step Functions Express, per execution started
EXPRESS_PER_GB_SECOND = 0.00001667  # Express duration, first 1,000 GB-hours a month
EXPRESS_MEMORY_GB = 64 / 1024  # billed in 64 MB steps; a job's state is a few KB
EXPRESS_HAND_OVER_SECONDS = 150  # settings.express_hand_over_seconds' default
LAMBDA_PER_GB_SECOND = 0.0000133334  # arm64
LAMBDA_PER_REQUEST = 0.20 / 1_000_000
DDB_PER_WRU = 1.25 / 1_000_000  # on-demand write request unit (1 KB)
DDB_PER_RRU = 0.25 / 1_000_000  # on-demand read request unit (4 KB strongly consistent)
S3_PER_PUT = 0.005 / 1000  # PUT, COPY, POST, LIST class (multipart parts included)
API_PER_REQUEST = 1.00 / 1_000_000  # HTTP API, first 300 M, per 512 KB increment
SECRETS_PER_CALL = 0.05 / 10_000  # Secrets Manager API calls
LOGS_PER_GB = 0.50  # CloudWatch Logs ingestion (standard class)
XRAY_PER_TRACE = 5.00 / 1_000_000  # traces recorded
EVENTS_PER_EVENT = 1.00 / 1_000_000  # EventBridge custom events put (the completion event)
PLATFORM_LOG_BYTES = 600  # assumed: Lambda's platform.start + platform.report JSON lines

# --- the default polling policy the projection uses -------------------------------------------
DEFAULT_POLL_INTERVAL = 5
DEFAULT_POLL_MAX_INTERVAL = 30
DEFAULT_DEADLINE = 900
UPSTREAM_TIMES = (10, 30, 60, 120)

S3_PUT_OPERATIONS = {
    "PutObject",
    "CreateMultipartUpload",
    "UploadPart",
    "CompleteMultipartUpload",
    "CopyObject",
}
DDB_WRITE_OPERATIONS = {
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "TransactWriteItems",
}
DDB_READ_OPERATIONS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}

FUNCTION_ORDER = ("submit", "check_upstream", "store_images", "record_failure", "job_status")


# --------------------------------------------------------------------------- counting


class AwsCallCounter:
    """Counts every AWS API call that reaches moto's in-process mock, as "service.Operation"
    (botocore's event name). `paused()` hides the benchmark's own calls on this thread."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._local = threading.local()

    @contextmanager
    def installed(self) -> Iterator[AwsCallCounter]:
        from moto.core.botocore_stubber import BotocoreStubber

        original = BotocoreStubber.__call__
        counter = self

        def counting(stub: BotocoreStubber, event_name: str, request: Any, **kwargs: Any) -> Any:
            if stub.enabled and not getattr(counter._local, "paused", False):
                with counter._lock:
                    counter.calls[event_name.split(".", 1)[-1]] += 1
            return original(stub, event_name, request, **kwargs)

        with mock.patch.object(BotocoreStubber, "__call__", counting):
            yield self

    @contextmanager
    def paused(self) -> Iterator[None]:
        self._local.paused = True
        try:
            yield
        finally:
            self._local.paused = False

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.calls)


@contextmanager
def captured_output() -> Iterator[Callable[[], int]]:
    """Send fd 1 and 2 (the handlers' JSON logs and EMF metrics, warnings) to temporary files;
    yields a function giving the bytes written to stdout so far. stderr is replayed on error."""
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        saved = os.dup(1), os.dup(2)
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)

        def written() -> int:
            sys.stdout.flush()
            return os.fstat(out.fileno()).st_size

        failed = False
        try:
            yield written
        except BaseException:
            failed = True
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            if failed:
                err.seek(0)
                sys.stderr.write(err.read().decode(errors="replace")[-5000:])


def dynamodb_item_size(value: Any) -> int:
    """DynamoDB's item size rules, approximately: names + values, numbers ~ digits/2 + 1."""
    if isinstance(value, Mapping):
        return 3 + sum(len(str(k).encode()) + dynamodb_item_size(v) + 1 for k, v in value.items())
    if isinstance(value, list | tuple | set):
        return 3 + sum(dynamodb_item_size(v) + 1 for v in value)
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, int | float | Decimal):
        digits = len(str(value).lstrip("-").replace(".", "").lstrip("0")) or 1
        return (digits + 1) // 2 + 1
    if isinstance(value, bytes):
        return len(value)
    return len(str(value).encode())


# --------------------------------------------------------------------------- running jobs


@dataclass
class JobMeasure:
    job_id: str
    wall_seconds: float
    transitions: int
    states: Counter[str]
    invocations: Counter[str]  # by function directory
    durations_ms: dict[str, list[float]]
    aws_calls: Counter[str]
    upstream: dict[str, int]
    log_bytes: int
    row_bytes: int
    status: str


@dataclass
class Scenario:
    label: str
    samples: int
    jobs: list[JobMeasure] = field(default_factory=list)

    def mean(self, metric: Callable[[JobMeasure], float]) -> float:
        return statistics.fmean(metric(job) for job in self.jobs)


def _request_body(samples: int, seed: int) -> dict[str, Any]:
    """The sample request with a seed of its own: each measured job is generated (an identical
    fixed-seed request would be served from the result cache; `serve_repeat` measures that)."""
    from tests.support.events import load_event

    body: dict[str, Any] = json.loads(load_event("submit")["body"])
    body["samples"] = samples
    body["seed"] = seed
    return body


class JobRunner:
    def __init__(self, stack: Any, upstream: Any, counter: AwsCallCounter) -> None:
        from local.aws.lambda_runtime import Invocation

        self.stack = stack
        self.upstream = upstream
        self.counter = counter
        self.invocations: list[Invocation] = []
        self._names: dict[str, str] = dict(stack.function_names)
        self._seeds = iter(range(1000, 1_000_000))
        self.last_body: dict[str, Any] = {}

    def record(self, invocation: Any) -> None:
        self.invocations.append(invocation)

    def _submit(self, body: dict[str, Any]) -> Any:
        """The submit function's answer to a POST of `body`, its invocation recorded."""
        from local.aws.lambda_runtime import run_handler
        from tests.support.events import http_event_with_body

        return run_handler(
            self.stack,
            self._names["SubmitFunction"],
            http_event_with_body(body),
            trigger="POST /sd/text2image/v1",
            on_invoke=self.record,
        )

    def run(self, samples: int, log_bytes: Callable[[], int]) -> JobMeasure:
        from local.aws.lambda_runtime import run_handler
        from tests.support.events import status_event
        from tests.support.stack import execution_history, wait_for_execution

        baseline = self._baseline(log_bytes)
        self.last_body = _request_body(samples, next(self._seeds))
        response = self._submit(self.last_body)
        if response["statusCode"] != 202:
            raise RuntimeError(f"submit answered {response['statusCode']}: {response['body']}")
        job_id: str = json.loads(response["body"])["id"]
        with self.counter.paused():
            execution = wait_for_execution(job_id, self.stack, timeout=120)
        view = run_handler(
            self.stack,
            self._names["JobStatusFunction"],
            status_event(job_id),
            trigger="GET /sd/text2image/v1/status/{id}",
            on_invoke=self.record,
        )
        wall = time.perf_counter() - baseline.started
        with self.counter.paused():
            history = execution_history(job_id, self.stack)
        states = Counter(
            event["stateEnteredEventDetails"]["name"]
            for event in history
            if event["type"].endswith("StateEntered")
        )
        status = json.loads(view["body"]).get("status", "?")
        if execution["status"] != "SUCCEEDED" or status != "SUCCESS":
            raise RuntimeError(f"job {job_id} ended {execution['status']} / {status}")
        return self._measure(baseline, job_id, wall, states, status, log_bytes)

    def serve_repeat(self, log_bytes: Callable[[], int]) -> JobMeasure:
        """The last job's request sent again: served from the result cache (one submit
        invocation, answered 200 with the URLs; no workflow, no upstream call)."""
        baseline = self._baseline(log_bytes)
        response = self._submit(self.last_body)
        wall = time.perf_counter() - baseline.started
        answer = json.loads(response["body"])
        if response["statusCode"] != 200 or not answer.get("cached_from"):
            raise RuntimeError(f"the repeat was not served from the cache: {response['body']}")
        return self._measure(baseline, answer["id"], wall, Counter(), answer["status"], log_bytes)

    def _baseline(self, log_bytes: Callable[[], int]) -> _Baseline:
        return _Baseline(
            calls=self.counter.snapshot(),
            upstream=self.upstream.stats(),
            log_bytes=log_bytes(),
            first_invocation=len(self.invocations),
            started=time.perf_counter(),
        )

    def _measure(
        self,
        baseline: _Baseline,
        job_id: str,
        wall: float,
        states: Counter[str],
        status: str,
        log_bytes: Callable[[], int],
    ) -> JobMeasure:
        """One job's figures since `baseline`: its AWS calls, invocations, upstream calls, log
        bytes and row size."""
        from tests.support.stack import job_row

        with self.counter.paused():
            row = job_row(self.stack, job_id) or {}
        calls = self.counter.snapshot()
        calls.subtract(baseline.calls)
        upstream_after = self.upstream.stats()
        mine = self.invocations[baseline.first_invocation :]
        durations: dict[str, list[float]] = {}
        for invocation in mine:
            durations.setdefault(invocation.function, []).append(invocation.duration_ms)
        return JobMeasure(
            job_id=job_id,
            wall_seconds=wall,
            transitions=sum(states.values()),
            states=states,
            invocations=Counter(invocation.function for invocation in mine),
            durations_ms=durations,
            aws_calls=+calls,
            upstream={
                key: int(upstream_after[key]) - int(baseline.upstream[key])
                for key in ("submits", "status_checks", "downloads")
            },
            log_bytes=log_bytes() - baseline.log_bytes,
            row_bytes=dynamodb_item_size(row),
            status=status,
        )


@dataclass
class _Baseline:
    """The counters before a job, to measure it by difference."""

    calls: Counter[str]
    upstream: dict[str, Any]
    log_bytes: int
    first_invocation: int
    started: float


# --------------------------------------------------------------------------- pricing


def function_memory_mb() -> dict[str, int]:
    """MemorySize per function directory, from template.yaml (Globals, then the function)."""
    from local.aws.template import load_template, resources_of_type

    template = load_template()
    default = int(template.get("Globals", {}).get("Function", {}).get("MemorySize", 128))
    memory: dict[str, int] = {}
    for resource in resources_of_type(template, "AWS::Serverless::Function").values():
        props = resource["Properties"]
        directory = str(props["CodeUri"]).rstrip("/").rsplit("/", 1)[-1]
        memory[directory] = int(props.get("MemorySize", default))
    return memory


def billed_ms(duration_ms: float) -> int:
    """Lambda bills in 1 ms increments, at least 1 ms."""
    return max(1, math.ceil(duration_ms))


@dataclass
class Cost:
    components: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.components.values())

    @property
    def dominant(self) -> str:
        return max(self.components, key=lambda name: self.components[name])


def per_job_cost(scenario: Scenario, memory: Mapping[str, int]) -> Cost:
    jobs = scenario.jobs
    count = len(jobs)

    def total(metric: Callable[[JobMeasure], float]) -> float:
        return sum(metric(job) for job in jobs) / count

    gb_seconds = total(
        lambda job: sum(
            memory[function] / 1024 * billed_ms(ms) / 1000
            for function, values in job.durations_ms.items()
            for ms in values
        )
    )
    invocations = total(lambda job: sum(job.invocations.values()))
    wru_per_write = total(lambda job: math.ceil(job.row_bytes / 1024))
    rru_per_read = total(lambda job: math.ceil(job.row_bytes / 4096))
    ddb_writes = total(lambda job: _calls(job, "dynamodb", DDB_WRITE_OPERATIONS))
    ddb_reads = total(lambda job: _calls(job, "dynamodb", DDB_READ_OPERATIONS))
    api_requests = total(lambda job: job.invocations["submit"] + job.invocations["job_status"])
    log_bytes = total(
        lambda job: job.log_bytes + PLATFORM_LOG_BYTES * sum(job.invocations.values())
    )
    return Cost(
        {
            "Step Functions transitions": total(lambda job: job.transitions) * SFN_PER_TRANSITION,
            "Lambda requests": invocations * LAMBDA_PER_REQUEST,
            "Lambda compute (GB-s)": gb_seconds * LAMBDA_PER_GB_SECOND,
            "DynamoDB writes": ddb_writes * wru_per_write * DDB_PER_WRU,
            "DynamoDB reads": ddb_reads * rru_per_read * DDB_PER_RRU,
            "S3 PUT requests": total(lambda job: _calls(job, "s3", S3_PUT_OPERATIONS)) * S3_PER_PUT,
            "API Gateway HTTP API": api_requests * API_PER_REQUEST,
            "EventBridge events": total(lambda job: _calls(job, "eventbridge", {"PutEvents"}))
            * EVENTS_PER_EVENT,
            "Secrets Manager calls": total(
                lambda job: _calls(job, "secrets-manager", {"GetSecretValue"})
            )
            * SECRETS_PER_CALL,
            "CloudWatch Logs ingest (est.)": log_bytes / 1024**3 * LOGS_PER_GB,
        }
    )


def invocations_of(function: str) -> Callable[[JobMeasure], float]:
    def metric(job: JobMeasure) -> float:
        return job.invocations[function]

    return metric


def _calls(job: JobMeasure, service: str, operations: set[str]) -> int:
    return sum(
        count
        for name, count in job.aws_calls.items()
        if name.split(".", 1)[0] == service and name.split(".", 1)[-1] in operations
    )


# --------------------------------------------------------------------------- polling model


def check_times(
    upstream_seconds: float,
    *,
    initial: int = DEFAULT_POLL_INTERVAL,
    maximum: int = DEFAULT_POLL_MAX_INTERVAL,
    deadline: int = DEFAULT_DEADLINE,
) -> list[int]:
    """Seconds after submit of every status check, up to the one that sees SUCCESS for a job the
    upstream finishes `upstream_seconds` after submit (or the deadline), with the waits the
    gateway computes (the submit answer carries the first; Lambda time ignored)."""
    from imagegateway.domain.polling import next_wait_seconds

    start = datetime(2025, 1, 1, tzinfo=UTC)
    deadline_at = start + timedelta(seconds=deadline)

    def wait(polls: int, at: int) -> int:
        return next_wait_seconds(
            polls=polls,
            now=start + timedelta(seconds=at),
            deadline_at=deadline_at,
            initial=initial,
            maximum=maximum,
        )

    times = [wait(0, 0)]
    while times[-1] < upstream_seconds and times[-1] < deadline:
        times.append(times[-1] + wait(len(times), times[-1]))
    return times


# --------------------------------------------------------------------------- the benchmark


def run_scenarios(jobs: int) -> tuple[list[Scenario], Scenario, int]:
    from local.aws.moto_patches import handlers_in_process
    from local.fake_upstream import FakeUpstream
    from tests.support.caches import clear_all
    from tests.support.stack import UPSTREAM_KEY, moto_stack

    scenarios = [Scenario("samples=1", 1), Scenario("samples=4", 4)]
    repeats = Scenario("repeat (served)", 1)
    counter = AwsCallCounter()
    monkeypatch = pytest.MonkeyPatch()
    try:
        with (
            FakeUpstream(api_key=UPSTREAM_KEY, pending_polls=2) as upstream,
            # Measured with one status GET per check (the backoff policy), so the projections
            # below can price any policy from the same fixed part (see print_targets).
            moto_stack(
                upstream,
                monkeypatch,
                execute_state_machine=True,
                # ...and the predicted first check off: the fake's PENDING answers are counted,
                # not timed, so the predicted policy is priced from these parts (print_targets).
                environment={
                    "UPSTREAM_POLL_STRETCH_SECONDS": "0",
                    "PREDICTED_FIRST_CHECK": "false",
                },
            ) as stack,
            counter.installed(),
            captured_output() as log_bytes,
        ):
            runner = JobRunner(stack, upstream, counter)
            with handlers_in_process(stack, on_invoke=runner.record):
                runner.run(1, log_bytes)  # warm-up (imports, clients, caches): not counted
                for scenario in scenarios:
                    for _ in range(jobs):
                        scenario.jobs.append(runner.run(scenario.samples, log_bytes))
                        if scenario.samples == 1:
                            repeats.jobs.append(runner.serve_repeat(log_bytes))
            pending_polls = upstream.pending_polls
    finally:
        monkeypatch.undo()
        clear_all()
    return scenarios, repeats, pending_polls


@dataclass
class MeasuredParts:
    """What the simulated day (bench_simulated_day) scales up: the single-image scenario's
    measured jobs, the polling model's fixed and per-check parts, the functions' memory."""

    single: Scenario
    model: PollingModel
    fixed_cost: float
    memory: dict[str, int]


def measured_parts(jobs: int = 2) -> MeasuredParts:
    """The measured parts without the report (for `--only day`)."""
    scenarios, _, _ = run_scenarios(jobs)
    memory = function_memory_mb()
    costs = [per_job_cost(scenario, memory) for scenario in scenarios]
    return _parts(scenarios, costs, memory)


def _parts(
    scenarios: list[Scenario], costs: list[Cost], memory: Mapping[str, int]
) -> MeasuredParts:
    model = polling_model(scenarios, costs, memory)
    single = next(i for i, s in enumerate(scenarios) if s.samples == 1)
    return MeasuredParts(scenarios[single], model, model.fixed_costs[single], dict(memory))


def run_job_cost_bench(jobs: int = 5) -> MeasuredParts:
    title("2. Per-job cost model: real state machine in moto, real handlers in-process")
    started = time.perf_counter()
    scenarios, repeats, pending_polls = run_scenarios(jobs)
    elapsed = time.perf_counter() - started
    memory = function_memory_mb()
    note(
        f"{jobs} jobs per scenario, run one after another after one warm-up job; the fake "
        f"upstream answers PENDING {pending_polls}x then SUCCESS;"
    )
    note(
        "POLL_INTERVAL_SECONDS=1, POLL_MAX_INTERVAL_SECONDS=1 (tests' FAST_POLLING); the caller "
        "GETs status once, after the end;"
    )
    note(f"512x512 PNGs from the fake upstream; {elapsed:.1f} s for all jobs")

    print()
    print("  Measured per job (mean over the jobs; counts were identical in every job)")
    rows: list[list[object]] = []

    def add(label: str, metric: Callable[[JobMeasure], float], fmt: str = "{:.1f}") -> None:
        rows.append([label, *(fmt.format(s.mean(metric)) for s in scenarios)])

    add("wall time per job, s", lambda j: j.wall_seconds, "{:.2f}")
    add("state transitions (StateEntered)", lambda j: j.transitions)
    add("  of which CheckStatus (status checks)", lambda j: j.states["CheckStatus"])
    for function in FUNCTION_ORDER:
        add(f"Lambda invocations: {function}", invocations_of(function))
    add("upstream submits", lambda j: j.upstream["submits"])
    add("upstream status checks", lambda j: j.upstream["status_checks"])
    add("upstream image downloads", lambda j: j.upstream["downloads"])
    add("S3 PUT-class requests", lambda j: _calls(j, "s3", S3_PUT_OPERATIONS))
    add("DynamoDB write requests", lambda j: _calls(j, "dynamodb", DDB_WRITE_OPERATIONS))
    add("DynamoDB read requests", lambda j: _calls(j, "dynamodb", DDB_READ_OPERATIONS))
    add("job row size, bytes (est.)", lambda j: j.row_bytes, "{:.0f}")
    add(
        "Secrets Manager GetSecretValue", lambda j: _calls(j, "secrets-manager", {"GetSecretValue"})
    )
    add("Step Functions StartExecution", lambda j: _calls(j, "sfn", {"StartExecution"}))
    add("Lambda Invoke (by Step Functions)", lambda j: _calls(j, "lambda", {"Invoke"}))
    add("application log bytes (stdout)", lambda j: j.log_bytes, "{:.0f}")
    table(["per job", *(s.label for s in scenarios)], rows, indent=2)
    others = sorted(
        {
            name
            for s in scenarios
            for j in s.jobs
            for name in j.aws_calls
            if not name.startswith(
                ("s3.", "dynamodb.", "secrets-manager.", "sfn.", "lambda.", "eventbridge.")
            )
        }
    )
    if others:
        note(f"other AWS calls seen: {', '.join(others)}")
    states = Counter[str]()
    for job in scenarios[0].jobs:
        states.update(job.states)
    note(
        "states entered per job: "
        + ", ".join(f"{name} x{count / len(scenarios[0].jobs):g}" for name, count in states.items())
    )

    print()
    print("  Lambda durations measured in-process (warm; ms; median / max over all invocations)")
    duration_rows: list[list[object]] = []
    for function in FUNCTION_ORDER:
        cells: list[object] = [function, memory.get(function, "?")]
        seen = False
        for scenario in scenarios:
            values = [ms for job in scenario.jobs for ms in job.durations_ms.get(function, [])]
            seen = seen or bool(values)
            cells.append(f"{median(values):.1f} / {max(values):.1f}" if values else "-")
        if seen:
            duration_rows.append(cells)
    table(["function", "MemorySize MB", *(s.label for s in scenarios)], duration_rows, indent=2)
    note("an approximation of billed duration: the upstream is a local fake, S3 and DynamoDB")
    note("are moto in this process (no network latency), cold starts/INIT are not included")

    costs = [per_job_cost(scenario, memory) for scenario in scenarios]
    print()
    print("  Estimated AWS cost, USD per 1,000 jobs (= milli-dollars per job; list prices below)")
    cost_rows: list[list[object]] = []
    for component in costs[0].components:
        cells = [component]
        for cost in costs:
            value = cost.components[component]
            cells += [per_1000(value), f"{100 * value / cost.total:.1f}%"]
        cost_rows.append(cells)
    total_cells: list[object] = ["total per 1,000 jobs"]
    image_cells: list[object] = ["total per 1,000 images"]
    for scenario, cost in zip(scenarios, costs, strict=True):
        total_cells += [per_1000(cost.total), "100%"]
        image_cells += [per_1000(cost.total / scenario.samples), ""]
    cost_rows += [total_cells, image_cells]
    headers = ["component"]
    for scenario in scenarios:
        headers += [f"{scenario.label} $/1k jobs", "share"]
    table(headers, cost_rows, indent=2)
    for scenario, cost in zip(scenarios, costs, strict=True):
        share = cost.components[cost.dominant] / cost.total
        note(f"dominant ({scenario.label}): {cost.dominant}, {100 * share:.0f}% of the job's cost")
    print_prices(memory)

    print_polling_projection(scenarios, costs, memory)
    at_30_seconds = print_targets(scenarios, costs, memory)
    print_repeat_cost(scenarios, costs, repeats, memory, at_30_seconds)
    return _parts(scenarios, costs, memory)


def print_prices(memory: Mapping[str, int]) -> None:
    note("list prices assumed (us-east-1, no free tier):")
    note("  Step Functions Standard $0.025 per 1,000 state transitions")
    note(
        "  Lambda arm64 $0.0000133334 per GB-s + $0.20 per 1M requests; memory from "
        "template.yaml: " + ", ".join(f"{name} {mb} MB" for name, mb in sorted(memory.items()))
    )
    note("  billed duration = in-process duration rounded up to 1 ms (min 1 ms)")
    note(
        "  DynamoDB on-demand $1.25 per 1M WRU (1 KB), $0.25 per 1M RRU (4 KB, strongly "
        "consistent), units from the job row's size"
    )
    note("  S3 $0.005 per 1,000 PUT-class requests (PutObject, multipart create/part/complete)")
    note("  API Gateway HTTP API $1.00 per 1M requests (the POST + the caller's status GETs)")
    note("  EventBridge $1.00 per 1M custom events (each job's completion event)")
    note(
        "  Secrets Manager $0.05 per 10,000 calls (0 measured: in-process every function shares "
        "one cache, warm; a real cold environment adds 1 call per function per 5 min)"
    )
    note(
        f"  CloudWatch Logs $0.50 per GB ingested: measured stdout + {PLATFORM_LOG_BYTES} B "
        "assumed per invocation for Lambda's platform lines"
    )


@dataclass
class PollingModel:
    """A job's transitions and cost as a fixed part plus a part per status check (measured)."""

    loop_states: list[str]
    fixed_transitions: float
    check_ms: list[float]
    per_check_cost: float
    fixed_costs: list[float]  # per scenario

    @property
    def per_check_transitions(self) -> int:
        return len(self.loop_states)

    def transitions(self, checks: int) -> float:
        return self.fixed_transitions + self.per_check_transitions * checks


def polling_model(
    scenarios: list[Scenario], costs: list[Cost], memory: Mapping[str, int]
) -> PollingModel:
    measured = scenarios[0]
    checks = measured.mean(lambda job: job.states["CheckStatus"])
    transitions = measured.mean(lambda job: job.transitions)
    loop_states = [
        name for name, count in measured.jobs[0].states.items() if count == round(checks)
    ]
    per_check_transitions = len(loop_states)
    fixed_transitions = transitions - per_check_transitions * checks
    check_ms = [ms for job in measured.jobs for ms in job.durations_ms.get("check_upstream", [])]
    check_gb_s = memory["check_upstream"] / 1024 * billed_ms(statistics.fmean(check_ms)) / 1000
    per_check_cost = (
        per_check_transitions * SFN_PER_TRANSITION
        + LAMBDA_PER_REQUEST
        + check_gb_s * LAMBDA_PER_GB_SECOND
        + PLATFORM_LOG_BYTES / 1024**3 * LOGS_PER_GB
    )
    fixed_costs = [cost.total - checks * per_check_cost for cost in costs]
    return PollingModel(loop_states, fixed_transitions, check_ms, per_check_cost, fixed_costs)


def print_polling_projection(
    scenarios: list[Scenario], costs: list[Cost], memory: Mapping[str, int]
) -> None:
    """Cost for jobs the upstream finishes in T s, with the default polling policy."""
    measured = scenarios[0]
    model = polling_model(scenarios, costs, memory)
    loop_states, fixed_transitions = model.loop_states, model.fixed_transitions
    per_check_transitions, check_ms = model.per_check_transitions, model.check_ms
    per_check_cost, fixed_costs = model.per_check_cost, model.fixed_costs

    print()
    print(
        f"  Polling projection: default POLL_INTERVAL_SECONDS={DEFAULT_POLL_INTERVAL}, x1.5 "
        f"per check, POLL_MAX_INTERVAL_SECONDS={DEFAULT_POLL_MAX_INTERVAL}, deadline "
        f"{DEFAULT_DEADLINE} s"
    )
    note(
        f"transitions = {fixed_transitions:g} + {per_check_transitions} x checks "
        f"(per check: {', '.join(loop_states)}); each check also costs one check_upstream "
        f"invocation ({statistics.fmean(check_ms):.1f} ms measured) and one upstream status GET"
    )
    note(
        f"per 1,000 checks ${per_1000(per_check_cost)}; the fixed part per 1,000 jobs: "
        + ", ".join(
            f"{s.label} ${per_1000(fixed)}" for s, fixed in zip(scenarios, fixed_costs, strict=True)
        )
    )
    rows: list[list[object]] = []
    for upstream_seconds in UPSTREAM_TIMES:
        times = check_times(upstream_seconds)
        k, seen_at = len(times), times[-1]
        sfn = (fixed_transitions + per_check_transitions * k) * SFN_PER_TRANSITION
        cells: list[object] = [
            upstream_seconds,
            k,
            seen_at,
            seen_at - upstream_seconds,
            f"{fixed_transitions + per_check_transitions * k:g}",
        ]
        for scenario, fixed in zip(scenarios, fixed_costs, strict=True):
            total = fixed + k * per_check_cost
            cells += [per_1000(total), per_1000(total / scenario.samples)]
        cells.append(f"{100 * sfn / (fixed_costs[0] + k * per_check_cost):.0f}%")
        rows.append(cells)
    headers = ["T s", "checks", "seen at s", "lag s", "transitions"]
    for scenario in scenarios:
        headers += [f"{scenario.label} $/1k jobs", "$/1k images"]
    headers.append("SFN share (s=1)")
    table(headers, rows, indent=2)
    schedule = ", ".join(str(at) for at in check_times(DEFAULT_DEADLINE)[:9])
    note(f"checks happen at t = {schedule}, ... s after submit (then every 30 s)")
    api_get = API_PER_REQUEST + LAMBDA_PER_REQUEST + DDB_PER_RRU
    jobs_ms = [ms for job in measured.jobs for ms in job.durations_ms.get("job_status", [])]
    if jobs_ms:
        api_get += (
            memory["job_status"]
            / 1024
            * billed_ms(statistics.fmean(jobs_ms))
            / 1000
            * (LAMBDA_PER_GB_SECOND)
        )
    note(
        f"each extra caller status GET adds ~${per_1000(api_get)} per 1,000 (API request + jobs "
        "invocation + 1 RRU); a caller polling every 5 s for 60 s adds ~12 of them per job"
    )
    note(
        f"X-Ray (Tracing: Active) is not in the totals: <= ${per_1000(3 * XRAY_PER_TRACE)} per "
        "1,000 jobs if every trace were sampled (POST, execution, GET); default sampling keeps "
        "1/s + 5%"
    )


# --------------------------------------------------------------------------- Express pricing


@dataclass
class ExpressCost:
    """One job on an Express machine: the same tasks, with Step Functions billed by duration."""

    executions: int
    billed_seconds: float
    checks: int
    check_ms: float
    sfn: float
    checks_dollars: float
    rest: float

    @property
    def total(self) -> float:
        return self.sfn + self.checks_dollars + self.rest


def express_cost(
    scenario: Scenario, model: PollingModel, index: int, memory: Mapping[str, int]
) -> ExpressCost:
    """A job the upstream finishes in T s on WorkflowType=EXPRESS, priced from the measured
    Standard run: its fixed part without transitions, one check invocation a second (each
    measured, without its transitions), and the execution's duration (T, the submit and store
    tasks as measured, a second's wait before the first check, half a second's mean lag)."""
    t = TARGET_UPSTREAM_SECONDS
    checks = t + 1
    per_check = model.per_check_cost - model.per_check_transitions * SFN_PER_TRANSITION
    rest = model.fixed_costs[index] - model.fixed_transitions * SFN_PER_TRANSITION

    def mean_ms(function: str) -> float:
        durations = [ms for job in scenario.jobs for ms in job.durations_ms.get(function, [])]
        return statistics.fmean(durations) if durations else 0.0

    tasks = (mean_ms("submit_upstream") + mean_ms("store_images")) / 1000
    billed = math.ceil(
        (t + 1 + 0.5 + tasks + checks * statistics.fmean(model.check_ms) / 1000) * 10
    )
    billed_seconds = billed / 10
    executions = max(1, math.ceil(billed_seconds / EXPRESS_HAND_OVER_SECONDS))
    sfn = (
        executions * EXPRESS_PER_REQUEST
        + billed_seconds * EXPRESS_MEMORY_GB * EXPRESS_PER_GB_SECOND
    )
    return ExpressCost(
        executions=executions,
        billed_seconds=billed_seconds,
        checks=checks,
        check_ms=statistics.fmean(model.check_ms),
        sfn=sfn,
        checks_dollars=checks * per_check,
        rest=rest,
    )


# --------------------------------------------------------------------------- issue #10's targets

TARGET_UPSTREAM_SECONDS = 30
TARGET_TRANSITIONS = 8
TARGET_DOLLARS_PER_1000_JOBS = 0.10
# Issue #23's targets, with the predicted first check.
TARGET_STANDARD_DOLLARS = 0.20
TARGET_EXPRESS_DOLLARS = 0.05
# The predicted first check of a learned shape (domain.upstream_durations): 2 status GETs in one
# check invocation, which sleeps the fraction the Wait state's whole seconds leave before the
# first check (<= 1 s, 0.5 on average) and until done_by after a PENDING answer (<= 1 s; 0.5).
PREDICTED_GETS = 2
PREDICTED_WAIT_SECONDS = 1.0
# Its extra reads: the estimate at the submit (the 202's ETA) and at the upstream's acceptance
# (eventually consistent GetItems, half a read unit each); the sample's write at the store step
# is in the measured run (store_job records it whether or not the check is predicted).
PREDICTED_EXTRA_READS = 2
DDB_PER_EVENTUAL_READ = DDB_PER_RRU / 2


@dataclass
class PredictedCost:
    """A learned shape's job at T = 30 s, both workflow types (from the measured parts)."""

    standard: float
    standard_transitions: float
    express: float
    express_sfn: float
    express_checks: float
    express_rest: float
    express_billed_seconds: float


def predicted_cost(
    scenarios: list[Scenario], model: PollingModel, single: int, memory: Mapping[str, int]
) -> PredictedCost:
    t = TARGET_UPSTREAM_SECONDS
    check_mb = memory["check_upstream"]
    waiting = PREDICTED_WAIT_SECONDS * check_mb / 1024 * LAMBDA_PER_GB_SECOND
    reads = PREDICTED_EXTRA_READS * DDB_PER_EVENTUAL_READ
    standard = model.fixed_costs[single] + model.per_check_cost + waiting + reads
    # Express: one check invocation (its second GET in-function), the execution billed for T,
    # the submit and store tasks, the check, and the mean half second of detection.
    per_check = model.per_check_cost - model.per_check_transitions * SFN_PER_TRANSITION
    rest = model.fixed_costs[single] - model.fixed_transitions * SFN_PER_TRANSITION + reads

    def mean_ms(function: str) -> float:
        scenario = scenarios[single]
        durations = [ms for job in scenario.jobs for ms in job.durations_ms.get(function, [])]
        return statistics.fmean(durations) if durations else 0.0

    tasks = (mean_ms("submit_upstream") + mean_ms("store_images")) / 1000
    check_seconds = statistics.fmean(model.check_ms) / 1000 + PREDICTED_WAIT_SECONDS
    billed = math.ceil((t + 0.5 + tasks + check_seconds) * 10) / 10
    executions = max(1, math.ceil(billed / EXPRESS_HAND_OVER_SECONDS))
    sfn = executions * EXPRESS_PER_REQUEST + billed * EXPRESS_MEMORY_GB * EXPRESS_PER_GB_SECOND
    return PredictedCost(
        standard=standard,
        standard_transitions=model.transitions(1),
        express=sfn + per_check + waiting + rest,
        express_sfn=sfn,
        express_checks=per_check + waiting,
        express_rest=rest,
        express_billed_seconds=billed,
    )


def print_targets(
    scenarios: list[Scenario], costs: list[Cost], memory: Mapping[str, int]
) -> tuple[float, float]:
    """Transitions and cost per job at T = 30 s under today's policy (the projection's own
    figures: fixed part + per-check part), next to issue #10's targets. Returns the dollars per
    1,000 single-image jobs at T = 30 s: STANDARD (in-function polling), EXPRESS."""
    model = polling_model(scenarios, costs, memory)
    checks = len(check_times(TARGET_UPSTREAM_SECONDS))
    transitions = model.transitions(checks)
    single = next(i for i, s in enumerate(scenarios) if s.samples == 1)
    dollars = (model.fixed_costs[single] + checks * model.per_check_cost) * 1000

    # In-function polling (the template's default, StatusCheckStretchSeconds=100): a job of
    # T s takes ceil(T / 100) check invocations, each one loop of the state machine, and keeps
    # the 128 MB check function busy for about T s, asking the upstream once a second.
    from local.aws.template import load_template

    stretch = int(load_template()["Parameters"]["StatusCheckStretchSeconds"]["Default"])
    check_mb = memory["check_upstream"]
    invocations = max(1, math.ceil(TARGET_UPSTREAM_SECONDS / stretch)) if stretch else checks
    stretch_transitions = model.transitions(invocations)
    waiting = TARGET_UPSTREAM_SECONDS * check_mb / 1024 * LAMBDA_PER_GB_SECOND
    stretch_dollars = (
        model.fixed_costs[single] + invocations * model.per_check_cost + waiting
    ) * 1000

    express = express_cost(scenarios[single], model, single, memory)
    predicted = predicted_cost(scenarios, model, single, memory)

    def verdict(ok: bool) -> str:
        return "yes" if ok else "NO"

    print()
    print(
        f"  Against issue #10's targets: a single-image job the upstream finishes in "
        f"T = {TARGET_UPSTREAM_SECONDS} s; backoff = one GET per check, 5 s x1.5 to 30 s (before);"
        f" in-function = StatusCheckStretchSeconds={stretch} (WorkflowType=STANDARD, the default);"
        " express = WorkflowType=EXPRESS, one check a second from Wait states"
    )
    table(
        ["per job at T = 30 s", "backoff", "in-function", "express", "target", "met (best)"],
        [
            [
                "billed state transitions",
                f"{transitions:g}",
                f"{stretch_transitions:g}",
                "0 (not billed)",
                f"<= {TARGET_TRANSITIONS}",
                verdict(stretch_transitions <= TARGET_TRANSITIONS),
            ],
            [
                "$ per 1,000 jobs (samples=1)",
                f"{dollars:.4f}",
                f"{stretch_dollars:.4f}",
                f"{express.total * 1000:.4f}",
                f"<= {TARGET_DOLLARS_PER_1000_JOBS:.2f}",
                verdict(min(stretch_dollars, express.total * 1000) <= TARGET_DOLLARS_PER_1000_JOBS),
            ],
            [
                "check invocations (state machine loops)",
                checks,
                invocations,
                express.checks,
                "-",
                "-",
            ],
            [
                "upstream status GETs",
                checks,
                TARGET_UPSTREAM_SECONDS + 1,
                express.checks,
                "-",
                "-",
            ],
        ],
        indent=2,
    )
    note(
        f"express: {express.executions} execution(s) (a new one every "
        f"{EXPRESS_HAND_OVER_SECONDS} s), {express.billed_seconds:.1f} s billed at 64 MB = "
        f"${express.sfn * 1000:.4f} per 1,000 jobs for Step Functions; {express.checks} check "
        f"invocations at {express.check_ms:.0f} ms = ${express.checks_dollars * 1000:.4f}; "
        f"the rest (submit, store, API, DynamoDB, S3, logs, events) ${express.rest * 1000:.4f}"
    )
    note(
        f"in-function: the check function waits ~{TARGET_UPSTREAM_SECONDS} s at "
        f"{check_mb} MB = ${waiting * 1000:.4f} per 1,000 jobs; Step Functions "
        f"${stretch_transitions * SFN_PER_TRANSITION * 1000:.4f}: Standard transitions alone are "
        "most of the target; WorkflowType=EXPRESS meets it (docs/performance.md)"
    )
    note(
        f"transitions = {model.fixed_transitions:g} + {model.per_check_transitions} x "
        f"{checks} checks; Step Functions alone is "
        f"${model.transitions(checks) * SFN_PER_TRANSITION * 1000:.4f} per 1,000 jobs"
    )
    print()
    print(
        f"  Against issue #23's targets: the predicted first check of a learned shape at T = "
        f"{TARGET_UPSTREAM_SECONDS} s ({PREDICTED_GETS} status GETs in one check invocation)"
    )
    table(
        ["per 1,000 single-image jobs at T = 30 s", "before", "predicted", "target", "met"],
        [
            [
                "STANDARD $",
                f"{stretch_dollars:.4f}",
                f"{predicted.standard * 1000:.4f}",
                f"<= {TARGET_STANDARD_DOLLARS:.2f}",
                verdict(predicted.standard * 1000 <= TARGET_STANDARD_DOLLARS),
            ],
            [
                "  of which Step Functions transitions",
                f"{stretch_transitions * SFN_PER_TRANSITION * 1000:.4f}",
                f"{predicted.standard_transitions * SFN_PER_TRANSITION * 1000:.4f}",
                "-",
                "-",
            ],
            [
                "  of which the check function waiting",
                f"{waiting * 1000:.4f}",
                f"{PREDICTED_WAIT_SECONDS * check_mb / 1024 * LAMBDA_PER_GB_SECOND * 1000:.4f}",
                "-",
                "-",
            ],
            [
                "EXPRESS $",
                f"{express.total * 1000:.4f}",
                f"{predicted.express * 1000:.4f}",
                f"<= {TARGET_EXPRESS_DOLLARS:.2f}",
                verdict(predicted.express * 1000 <= TARGET_EXPRESS_DOLLARS),
            ],
            [
                "  of which execution seconds",
                f"{express.sfn * 1000:.4f} ({express.billed_seconds:.1f} s)",
                f"{predicted.express_sfn * 1000:.4f} ({predicted.express_billed_seconds:.1f} s)",
                "-",
                "-",
            ],
            [
                "  of which check invocations",
                f"{express.checks_dollars * 1000:.4f} ({express.checks})",
                f"{predicted.express_checks * 1000:.4f} (1)",
                "-",
                "-",
            ],
            [
                "  of which the rest",
                f"{express.rest * 1000:.4f}",
                f"{predicted.express_rest * 1000:.4f}",
                "-",
                "-",
            ],
            [
                "status GETs per job",
                TARGET_UPSTREAM_SECONDS + 1,
                PREDICTED_GETS,
                "-",
                "-",
            ],
        ],
        indent=2,
    )
    note(
        f"predicted: the check invocation waits ~{PREDICTED_WAIT_SECONDS:g} s in all (the Wait "
        "state's fraction, then until the shape's done_by); + the estimate's reads at submit and "
        "acceptance (eventually consistent); the sample's write is in the measured fixed part"
    )
    note(
        "an unseen shape costs what 'before' does; EXPRESS still bills the execution for the "
        "whole upstream time, the bulk of its cost (docs/performance.md: what it would take)"
    )
    return predicted.standard * 1000, predicted.express * 1000


# --------------------------------------------------------------------------- the result cache


def print_repeat_cost(
    scenarios: list[Scenario],
    costs: list[Cost],
    repeats: Scenario,
    memory: Mapping[str, int],
    at_30_seconds: tuple[float, float],
) -> None:
    """What sending a fixed-seed request again costs: served from the result cache (measured:
    the repeat of each single-image job above) vs generated again (that job's own cost)."""
    single = next(i for i, s in enumerate(scenarios) if s.samples == 1)
    served = per_job_cost(repeats, memory)
    generated = costs[single].total
    standard_30, express_30 = at_30_seconds
    upstream_calls = repeats.mean(lambda job: job.upstream["submits"])
    print()
    print(
        "  A repeated fixed-seed request (single image): served from the result cache vs generated"
    )
    table(
        ["per 1,000 repeats", "served (measured)", "generated (measured)", "generated, T = 30 s"],
        [
            [
                "gateway's AWS cost, $",
                per_1000(served.total),
                per_1000(generated),
                f"{standard_30:.4f} (STANDARD) / {express_30:.4f} (EXPRESS)",
            ],
            [
                "upstream POSTs (each a paid generation)",
                f"{1000 * upstream_calls:g}",
                "1000",
                "1000",
            ],
            [
                "answer",
                f"200 at once ({1000 * repeats.mean(lambda j: j.wall_seconds):.0f} ms in-process)",
                "202, then SUCCESS",
                "202, then SUCCESS",
            ],
        ],
        indent=2,
    )
    note(
        f"served: one submit invocation, the cache-index query and reads, one row write, "
        f"{repeats.mean(lambda j: _calls(j, 's3', S3_PUT_OPERATIONS)):g} S3 COPY per image, the "
        f"completion event; dominant: {served.dominant}. Generated again also pays the "
        "upstream's own price per image, which a served repeat never does."
    )
