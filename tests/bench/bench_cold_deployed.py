"""Benchmark 4a (the headline): every function's cold start as Lambda loads it, against a bare
`import boto3` as the runtime has it.

- **The layer** is built by its own Makefile (`build-CommonLayer`), for this machine's platform
  (the wheels must load here; Lambda's are manylinux2014_aarch64), with its byte code compiled by
  python3.12 (`compile`: unchecked-hash), as `sam build` ships it.
- **The runtime's boto3**: the venv's boto3 version pip-installed into a directory of its own and
  compiled (the python3.12 runtime ships its boto3 with byte code).
- **The function's code**: a copy of functions/<name>/ without __pycache__ (SAM ships none).
- **Each run** is a fresh python3.12 (`-I -B`: nothing written, as on the read-only /opt and
  /var/task; root ignores file modes, so -B is what keeps it read-only here) with sys.path =
  [the function's copy, the layer, the runtime's directory] and a Lambda-like environment. It
  times the import of the handler's module, then the first invocation with the function's sample
  event from events/ (a minimal one for the authorizer and the queue consumer, which have none)
  and a Lambda-like context. Every AWS endpoint is a closed local port with one attempt
  (connection refused at once), the upstream too: the first call pays what a first call loads
  and builds (boto3 clients, pydantic models, Powertools utilities) and stops at its first
  request. Any other socket is refused.
- **The baseline**: the same interpreter, `import boto3` from the runtime's directory.

Median of alternated runs. If no python3.12 is on this machine, the venv's Python is used and the
note says so.
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.bench._report import median, note, table
from tests.bench.bench_cold_start import (
    BASELINE,
    LAYER,
    REPO,
    TARGET_RATIO,
    Function,
    lambda_environment,
)
from tests.support.runtime_python import runtime_python

EVENTS = REPO / "events"
TARGET_LAYER_MB = 25
# A port nothing listens on: every AWS and upstream call is refused at once.
CLOSED = "http://127.0.0.1:9"

CHILD = r"""
import json, socket, sys, time
blocked = []
_connect = socket.socket.connect
def guarded(self, address, *rest):
    if isinstance(address, tuple) and address[0] in ("127.0.0.1", "localhost"):
        return _connect(self, address, *rest)
    blocked.append(repr(address)[:80])
    raise OSError("bench: no network")
socket.socket.connect = guarded
task, layer, runtime, module, handler, event_file = sys.argv[1:7]
sys.path[:0] = [p for p in (task, layer, runtime) if p]
started = time.perf_counter()
error = ""
try:
    loaded = __import__(module)
except BaseException as exc:
    error = f"{type(exc).__name__}: {exc}"[:300]
seconds = time.perf_counter() - started
first_call = 0.0
outcome = ""
if not error and handler:
    class Context:
        function_name = "bench"
        function_version = "$LATEST"
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
        memory_limit_in_mb = 128
        aws_request_id = "00000000-0000-0000-0000-000000000000"
        log_group_name = "/aws/lambda/bench"
        log_stream_name = "bench"
        def get_remaining_time_in_millis(self):
            return 30000
    with open(event_file, encoding="utf-8") as handle:
        event = json.load(handle)
    began = time.perf_counter()
    try:
        answer = getattr(loaded, handler)(event, Context())
        code = answer.get("statusCode") if isinstance(answer, dict) else None
        outcome = "answered" + (f" {code}" if code is not None else "")
    except BaseException as exc:
        outcome = f"raised {type(exc).__name__}"
    first_call = time.perf_counter() - began
print(json.dumps({"seconds": seconds, "first_call": first_call, "blocked": blocked,
                  "modules": len(sys.modules), "error": error, "outcome": outcome}))
"""

# Events for the functions events/ has none for.
SYNTHETIC_EVENTS: dict[str, dict[str, Any]] = {
    "authorizer": {
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": "arn:aws:execute-api:us-east-1:123456789012:abc123/$default/GET/sd",
        "identitySource": ["igw_bench_key"],
        "routeKey": "GET /sd/{kind}/v1/status/{job_id}",
        "rawPath": "/sd/text2image/v1/status/x",
        "headers": {"api-key": "igw_bench_key"},
        "requestContext": {"http": {"method": "GET", "path": "/sd/text2image/v1/status/x"}},
    },
    "intake": {
        "Records": [
            {
                "messageId": "m-1",
                "receiptHandle": "r-1",
                "body": json.dumps(
                    {"kind": "text2image", "request": {"model_id": "sd1.5", "prompt": "a fox"}}
                ),
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SenderId": "AROA3XFRBF535EXAMPLE1:alice",
                    "SentTimestamp": "1764086400000",
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bench-requests",
                "awsRegion": "us-east-1",
            }
        ]
    },
}


@dataclass
class Built:
    python: str
    layer: Path
    runtime: Path
    tasks: Path
    layer_bytes: int
    layer_files: int
    pyc_files: int
    problem: str = ""


def build(scratch: Path, python: str) -> Built:
    """The layer by its Makefile, the runtime's boto3, the functions' code: under `scratch`."""
    artifacts = scratch / "layer"
    machine = "aarch64" if platform.machine() in ("aarch64", "arm64") else "x86_64"
    made = subprocess.run(  # noqa: S603 - make with fixed arguments
        [  # noqa: S607 - make from PATH, as `sam build` runs it
            "make",
            "--no-print-directory",
            "-C",
            str(LAYER),
            "build-CommonLayer",
            f"ARTIFACTS_DIR={artifacts}",
            f"PIP={python} -m pip",
            f"PLATFORM=manylinux2014_{machine}",
            f"COMPILE_PYTHON={python}",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    runtime = scratch / "runtime"
    installed = subprocess.run(  # noqa: S603 - pip with fixed arguments
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
            str(runtime),
            f"boto3=={metadata.version('boto3')}",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    subprocess.run(  # noqa: S603 - compileall with fixed arguments
        [python, "-m", "compileall", "-q", "-j", "0", str(runtime)],
        capture_output=True,
        check=False,
        timeout=600,
    )
    tasks = scratch / "tasks"
    for directory in (REPO / "functions").iterdir():
        if directory.is_dir():
            shutil.copytree(
                directory, tasks / directory.name, ignore=shutil.ignore_patterns("__pycache__")
            )
    layer = artifacts / "python"
    files = [path for path in layer.rglob("*") if path.is_file()] if layer.is_dir() else []
    problem = ""
    if made.returncode != 0:
        problem = f"the layer build failed: {(made.stdout + made.stderr)[-300:]}"
    elif installed.returncode != 0:
        problem = f"boto3 did not install: {installed.stderr[-300:]}"
    return Built(
        python=python,
        layer=layer,
        runtime=runtime,
        tasks=tasks,
        layer_bytes=sum(path.stat().st_size for path in files),
        layer_files=len(files),
        pyc_files=sum(1 for path in files if path.suffix == ".pyc"),
        problem=problem,
    )


def event_for(directory: str, scratch: Path) -> Path:
    path = EVENTS / f"{directory}.json"
    if path.is_file():
        return path
    synthetic = scratch / f"{directory}.event.json"
    synthetic.write_text(json.dumps(SYNTHETIC_EVENTS.get(directory, {})), encoding="utf-8")
    return synthetic


def deployed_environment(function: Function, built: Built) -> dict[str, str]:
    from local.aws.template import load_template

    parameters = load_template()["Parameters"]
    conditional = {  # values the template picks with Fn::If: a STANDARD stack's
        "UPSTREAM_POLL_STRETCH_SECONDS": str(parameters["StatusCheckStretchSeconds"]["Default"]),
    }
    variables = {
        **function.environment,
        **{name: value for name, value in conditional.items() if name in function.environment},
        # Every AWS service and the upstream: refused at once, one attempt.
        "AWS_ENDPOINT_URL": CLOSED,
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_RETRY_MODE": "standard",
        "UPSTREAM_BASE_URL": CLOSED,
        "POWERTOOLS_METRICS_NAMESPACE": "ImagepipelineGateway",
    }
    return lambda_environment(
        f"bench-{function.directory}",
        function.memory_mb,
        variables,
        task_root=str(built.tasks / function.directory),
    )


def run_once(
    built: Built, module: str, task: str, handler: str, event: Path, env: Mapping[str, str]
) -> dict[str, Any]:
    done = subprocess.run(  # noqa: S603 - the runtime's Python, fixed code
        [
            built.python,
            "-I",
            "-B",
            "-c",
            CHILD,
            task,
            str(built.layer),
            str(built.runtime),
            module,
            handler,
            str(event),
        ],
        cwd=task or str(built.runtime),
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"seconds": float("nan"), "first_call": 0.0, "error": done.stderr[-300:]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def run_as_deployed(functions: list[Function], repeats: int) -> None:
    print()
    print("  As deployed: the layer built by its Makefile with python3.12 byte code, read-only,")
    print("  the runtime's boto3; import + the first invocation with a sample event")
    python = runtime_python()
    if python is None:
        note("no python3.12 on this machine: measured with this venv's Python instead")
        python = sys.executable
    version = subprocess.run(  # noqa: S603 - the chosen Python
        [python, "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="bench-deployed-") as scratch_name:
        scratch = Path(scratch_name)
        built = build(scratch, python)
        if built.problem:
            note(f"not measured: {built.problem}")
            return
        names = [BASELINE, *(f.directory for f in functions)]
        by_name = {f.directory: f for f in functions}
        imports: dict[str, list[float]] = {name: [] for name in names}
        totals: dict[str, list[float]] = {name: [] for name in names}
        outcomes: dict[str, set[str]] = {name: set() for name in names}
        problems: dict[str, set[str]] = {name: set() for name in names}
        baseline_env = lambda_environment("bench-boto3", 256, {})
        for repeat in range(repeats):
            for name in names if repeat % 2 == 0 else names[::-1]:
                if name == BASELINE:
                    result = run_once(built, "boto3", "", "", Path(os.devnull), baseline_env)
                else:
                    function = by_name[name]
                    result = run_once(
                        built,
                        function.module,
                        str(built.tasks / name),
                        "lambda_handler",
                        event_for(name, scratch),
                        deployed_environment(function, built),
                    )
                imports[name].append(float(result["seconds"]))
                totals[name].append(float(result["seconds"]) + float(result["first_call"]))
                if result.get("outcome"):
                    outcomes[name].add(str(result["outcome"]))
                if result.get("error"):
                    problems[name].add(str(result["error"]))
                for address in result.get("blocked", []):
                    problems[name].add(f"network refused: {address}")
        base = median(imports[BASELINE])
        rows: list[list[object]] = []
        for name in names:
            total = median(totals[name])
            ratio = total / base if base else float("nan")
            rows.append(
                [
                    name if name == BASELINE else f"functions/{name}",
                    f"{median(imports[name]) * 1000:.0f}",
                    f"{(total - median(imports[name])) * 1000:.0f}",
                    f"{total * 1000:.0f}",
                    f"{median(imports[name]) / base:.2f}x",
                    f"{ratio:.2f}x",
                    "-" if name == BASELINE else ("yes" if ratio <= TARGET_RATIO else "NO"),
                    ", ".join(sorted(outcomes[name])) or "-",
                ]
            )
        table(
            [
                "function",
                "import ms",
                "first call ms",
                "total ms",
                "import vs boto3",
                "total vs boto3",
                f"<= {TARGET_RATIO}x",
                "first call ended",
            ],
            rows,
            indent=2,
        )
        mb = 1000 * 1000
        note(
            f"Python {version} ({python}); median of {repeats} alternated runs; -I -B (nothing "
            "written); every AWS endpoint and the upstream a closed local port (one attempt)"
        )
        note(
            f"first call ended: how the sample invocation ended at its first request (refused); "
            f"total = import + first call, the figure held to {TARGET_RATIO}x"
        )
        note(
            f"layer built by layers/common/Makefile (this machine's platform): "
            f"{built.layer_bytes / mb:.2f} MB unzipped, {built.layer_files} files, "
            f"{built.pyc_files} .pyc; <= {TARGET_LAYER_MB} MB: "
            f"{'yes' if built.layer_bytes <= TARGET_LAYER_MB * mb else 'NO'}"
        )
        for name, found in problems.items():
            for problem in sorted(found)[:2]:
                note(f"{name}: {problem}")
