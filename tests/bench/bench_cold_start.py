"""Benchmark 4: cold import of every function against a bare `import boto3`, and the layer's size.

Every function of template.yaml (its CodeUri and Handler module) is imported by a fresh
interpreter (`python -I -c ...`) with a Lambda-like environment: AWS_LAMBDA_FUNCTION_NAME and
LAMBDA_TASK_ROOT set (so Powertools' Tracer is live, as it is deployed with Tracing: Active, and
the X-Ray SDK runs in its Lambda mode), AWS_REGION, the template's Globals and function variables
(references to resources replaced by dummy names, parameters by their defaults), fake
credentials, no AWS config files. sys.path is the function's directory, then layers/common, then
this venv's site-packages (the layer's packages and the runtime's boto3). The child times the
import alone with time.perf_counter() and prints it; any socket connect or send is refused and
reported, so no import can reach AWS. Then, in the same child, it times what any first
invocation still loads (boto3, and the tracer's X-Ray SDK): the "+ first call" column, so what
moved from the import to the first call stays in view.

Runs alternate: boto3 first then every function, then the reverse order, and so on; medians.
Bytecode is cached (the venv's __pycache__). The headline figure is the as-deployed one
(`bench_cold_deployed`: the layer built by its Makefile with python3.12 byte code, read-only, the
first invocation with a sample event), printed first; this cached table follows it.
"""

from __future__ import annotations

import importlib.metadata as metadata
import io
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.bench._report import median, note, table, title

REPO = Path(__file__).resolve().parents[2]
LAYER = REPO / "layers" / "common"
TARGET_RATIO = 1.5
TARGET_LAYER_MB = 25  # issue #23: with the byte code (15 before it)
BASELINE = "bare import boto3"

CHILD = r"""
import json, socket, sys, time
blocked = []
def refuse(self, *args, **kwargs):
    blocked.append(repr(args[-1] if args else kwargs)[:80])
    raise OSError("bench: no network during the import")
for name in ("connect", "connect_ex", "sendto", "sendall", "send"):
    setattr(socket.socket, name, refuse)
function_dir, layer_dir, module = sys.argv[1:4]
import_only = sys.argv[4:] == ["--import-only"]
if function_dir:
    sys.path[:0] = [function_dir, layer_dir]
started = time.perf_counter()
error = ""
try:
    __import__(module)
except BaseException as exc:
    error = f"{type(exc).__name__}: {exc}"[:300]
seconds = time.perf_counter() - started
modules = len(sys.modules)
# What a first invocation still loads, whatever its use case: boto3 (every function calls AWS)
# and, with tracing live, the tracer (the X-Ray SDK; LazyTracer makes it at the first call).
first_call = 0.0
if not error and not import_only:
    began = time.perf_counter()
    try:
        import boto3
        tracer = getattr(sys.modules.get("imagegateway.platform.observability"), "tracer", None)
        if tracer is not None and hasattr(tracer, "_traced"):
            tracer.tracer
    except BaseException as exc:
        error = f"first call: {type(exc).__name__}: {exc}"[:300]
    first_call = time.perf_counter() - began
print(json.dumps({"seconds": seconds, "first_call": first_call, "blocked": blocked,
                  "modules": modules, "error": error}))
"""


@dataclass(frozen=True)
class Function:
    logical_id: str
    directory: str  # e.g. "submit" (functions/submit/)
    module: str  # the Handler's module, e.g. "app"
    environment: dict[str, str]
    memory_mb: int


def _dummy(name: str, reference: str) -> str:
    if name.endswith("_ARN"):
        return f"arn:aws:states:us-east-1:123456789012:stateMachine:bench-{reference}"
    if name.endswith("_URL"):
        return f"https://sqs.us-east-1.amazonaws.com/123456789012/bench-{reference}"
    if name.endswith("_SECRET_NAME"):
        return f"bench/{reference}"
    return f"bench-{reference}".lower()


def _resolve(name: str, value: Any, parameters: Mapping[str, Any]) -> str:
    """A template variable's value: literal, a parameter's default, or a dummy resource name."""
    if isinstance(value, dict) and "Ref" in value:
        reference = str(value["Ref"])
        if reference in parameters:
            return str(parameters[reference].get("Default", ""))
        return _dummy(name, reference)
    if isinstance(value, dict):
        return _dummy(name, "value")
    return str(value)


def template_functions() -> list[Function]:
    from local.aws.template import load_template, resources_of_type

    template = load_template()
    globals_fn = template.get("Globals", {}).get("Function", {})
    parameters = template.get("Parameters", {})
    global_vars = (globals_fn.get("Environment") or {}).get("Variables") or {}
    functions: list[Function] = []
    for logical_id, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        props = resource["Properties"]
        directory = str(props["CodeUri"]).rstrip("/").rsplit("/", 1)[-1]
        handler = str(props.get("Handler", globals_fn.get("Handler", "app.lambda_handler")))
        own = (props.get("Environment") or {}).get("Variables") or {}
        variables = {
            name: _resolve(name, value, parameters)
            for name, value in {**global_vars, **own}.items()
        }
        memory = int(props.get("MemorySize", globals_fn.get("MemorySize", 128)))
        functions.append(
            Function(logical_id, directory, handler.rsplit(".", 1)[0], variables, memory)
        )
    return functions


def lambda_environment(
    name: str, memory_mb: int, variables: Mapping[str, str], task_root: str = ""
) -> dict[str, str]:
    """What a python3.12 Lambda environment holds at INIT (no inherited shell variables).

    LAMBDA_TASK_ROOT (Lambda's /var/task: the function's code) matters: the X-Ray SDK reads it to
    know it runs in Lambda. Without it, its recorder builds a centralized sampler at import, with
    a botocore X-Ray client (~150 ms here), which it never does in Lambda."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "LAMBDA_TASK_ROOT": task_root or str(REPO),
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "_HANDLER": "app.lambda_handler",
        "POWERTOOLS_SERVICE_NAME": "imagepipeline-gateway",
        **variables,
    }


def import_once(
    module: str,
    function_dir: str,
    environment: Mapping[str, str],
    *extra: str,
    layer_dir: Path = LAYER,
    first_call: bool = True,
) -> tuple[dict[str, Any], str]:
    """One fresh interpreter importing `module` (then, with `first_call`, what a first
    invocation still loads); its JSON line and its stderr."""
    child = [
        CHILD,
        function_dir,
        str(layer_dir),
        module,
        *([] if first_call else ["--import-only"]),
    ]
    done = subprocess.run(  # noqa: S603 - our own interpreter, fixed code
        [sys.executable, *extra, "-I", "-c", *child],
        cwd=function_dir or str(REPO),
        env=dict(environment),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"seconds": float("nan"), "error": done.stderr[-300:], "blocked": []}, done.stderr
    result: dict[str, Any] = json.loads(lines[-1])
    return result, done.stderr


# --------------------------------------------------------------------------- -X importtime

_IMPORTTIME = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def import_profile(stderr: str) -> list[tuple[str, int, int, int]]:
    """(module, self µs, cumulative µs, depth) per line of `-X importtime`."""
    rows = []
    for line in stderr.splitlines():
        found = _IMPORTTIME.match(line)
        if found:
            own, cumulative, indent, name = found.groups()
            rows.append((name, int(own), int(cumulative), (len(indent) - 1) // 2))
    return rows


# --------------------------------------------------------------------------- layer size


def _requirement_names(path: Path) -> list[str]:
    names = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            names.append(re.split(r"[\[=<>!~; ]", line, maxsplit=1)[0])
    return names


def _makefile_list(name: str) -> list[str]:
    text = (LAYER / "Makefile").read_text(encoding="utf-8")
    found = re.search(rf"^{name}\s*:=\s*(.+)$", text, re.MULTILINE)
    return found.group(1).split() if found else []


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requires(dist: metadata.Distribution, extras: set[str]) -> list[tuple[str, set[str]]]:
    from packaging.requirements import Requirement

    found = []
    for raw in dist.requires or []:
        requirement = Requirement(raw)
        marker = requirement.marker
        if marker is not None and not any(
            marker.evaluate({"extra": extra}) for extra in (extras or {""})
        ):
            continue
        found.append((requirement.name, set(requirement.extras)))
    return found


def dependency_closure(top: list[str]) -> dict[str, str]:
    """{distribution: the one that pulled it in} from requirements.txt (its extras honoured)."""
    from packaging.requirements import Requirement

    text = (LAYER / "requirements.txt").read_text(encoding="utf-8")
    pending: list[tuple[str, set[str], str]] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            pending.append((requirement.name, set(requirement.extras), "requirements.txt"))
    seen: dict[str, str] = {}
    while pending:
        name, extras, parent = pending.pop()
        key = _canonical(name)
        if key in seen and not extras:
            continue
        seen.setdefault(key, parent)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        pending += [(child, more, name) for child, more in _requires(dist, extras)]
    return seen


@dataclass
class LayerSize:
    files: int
    unzipped: int
    zipped: int
    by_package: dict[str, int]
    mismatched: list[str]
    pruned: list[str]
    botocore_from: str | None
    files_by_name: dict[str, Path]  # path inside the layer's python/ -> the venv's file


def layer_size() -> LayerSize:
    """The layer as layers/common/Makefile would build it, from this venv's installed files:
    requirements.txt's distributions less the runtime's (RUNTIME_DISTS), no bin/, __pycache__,
    .pyc or top-level tests/, plus the imagegateway package."""
    pruned = {_canonical(name) for name in _makefile_list("RUNTIME_DISTS")}
    closure = dependency_closure(_requirement_names(LAYER / "requirements.txt"))
    mismatched: list[str] = []
    pins = {}
    for raw in (LAYER / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[_canonical(re.split(r"\[", name)[0])] = version.strip()
    files: dict[str, Path] = {}
    by_package: dict[str, int] = defaultdict(int)
    for key in sorted(closure):
        if key in pruned:
            continue
        try:
            dist = metadata.distribution(key)
        except metadata.PackageNotFoundError:
            mismatched.append(f"{key} not installed")
            continue
        if key in pins and dist.version != pins[key]:
            mismatched.append(f"{key} {dist.version} installed, {pins[key]} pinned")
        for entry in dist.files or []:
            parts = Path(str(entry)).parts
            if (
                parts[0] == ".."
                or "__pycache__" in parts
                or str(entry).endswith((".pyc", ".pyo"))
                or (len(parts) > 2 and parts[1] == "tests")
            ):
                continue
            path = Path(str(dist.locate_file(entry)))
            if path.is_file():
                files[str(entry)] = path
                by_package[key] += path.stat().st_size
    for path in (LAYER / "imagegateway").rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            files[str(path.relative_to(LAYER))] = path
            by_package["imagegateway"] += path.stat().st_size
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, path in sorted(files.items()):
            archive.write(path, f"python/{name}")
    botocore_from = closure.get("botocore")
    return LayerSize(
        files=len(files),
        unzipped=sum(path.stat().st_size for path in files.values()),
        zipped=len(buffer.getvalue()),
        by_package=dict(by_package),
        mismatched=mismatched,
        pruned=sorted(closure.keys() & pruned),
        botocore_from=botocore_from,
        files_by_name=files,
    )


# --------------------------------------------------------------------------- the benchmark


def run_cold_start_bench(repeats: int = 7) -> None:
    title("4. Cold start: every function vs a bare `import boto3` (fresh interpreters)")
    started = time.perf_counter()
    functions = template_functions()
    from tests.bench.bench_cold_deployed import run_as_deployed

    run_as_deployed(functions, repeats)
    print()
    print("  Cached (the development view: this venv, byte code in __pycache__; the import alone")
    print("  and + what any first call loads), for comparison with the earlier runs")
    note(
        f"median of {repeats} runs, order alternated (boto3 first, then last); import time "
        "measured inside the child (time.perf_counter around the import only)"
    )
    note(
        "Lambda-like environment: AWS_LAMBDA_FUNCTION_NAME and LAMBDA_TASK_ROOT set (Powertools "
        "Tracer live, the X-Ray SDK in its Lambda mode), template variables with dummy resource "
        "names; sockets refused during the import"
    )
    note(
        f"this venv's Python {sys.version.split()[0]} (Lambda: python3.12 arm64); bytecode "
        "cached in __pycache__"
    )
    names = [BASELINE, *(f.directory for f in functions)]
    environments = {
        BASELINE: lambda_environment("bench-boto3", 256, {}),
        **{
            f.directory: lambda_environment(
                f"bench-{f.directory}",
                f.memory_mb,
                f.environment,
                task_root=str(REPO / "functions" / f.directory),
            )
            for f in functions
        },
    }
    modules = {
        BASELINE: ("boto3", ""),
        **{f.directory: (f.module, str(REPO / "functions" / f.directory)) for f in functions},
    }
    seconds: dict[str, list[float]] = {name: [] for name in names}
    with_first_call: dict[str, list[float]] = {name: [] for name in names}
    problems: dict[str, set[str]] = defaultdict(set)
    counts: dict[str, int] = {}
    for repeat in range(repeats):
        order = names if repeat % 2 == 0 else names[::-1]
        for name in order:
            module, directory = modules[name]
            result, _ = import_once(module, directory, environments[name])
            seconds[name].append(float(result["seconds"]))
            with_first_call[name].append(
                float(result["seconds"]) + float(result.get("first_call", 0.0))
            )
            counts[name] = int(result.get("modules", 0))
            if result.get("error"):
                problems[name].add(f"import failed: {result['error']}")
            for address in result.get("blocked", []):
                problems[name].add(f"network refused: {address}")
    baseline = median(seconds[BASELINE])
    rows: list[list[object]] = []
    for name in names:
        value = median(seconds[name])
        ratio = value / baseline if baseline else float("nan")
        first = median(with_first_call[name])
        rows.append(
            [
                name if name == BASELINE else f"functions/{name}",
                f"{value * 1000:.0f}",
                f"{min(seconds[name]) * 1000:.0f}-{max(seconds[name]) * 1000:.0f}",
                counts.get(name, 0),
                f"{ratio:.2f}x",
                "-" if name == BASELINE else ("yes" if ratio <= TARGET_RATIO else "NO"),
                f"{first / baseline:.2f}x" if baseline else "nan",
            ]
        )
    print()
    table(
        [
            "import",
            "median ms",
            "range ms",
            "modules",
            "vs boto3",
            f"<= {TARGET_RATIO}x",
            "+ first call",
        ],
        rows,
        indent=2,
    )
    note(
        "+ first call: the import, then in the same process what any first invocation still "
        "loads (boto3; with tracing live, the X-Ray SDK through the tracer), vs bare boto3. "
        "A use case's own first-use imports (e.g. the idempotency utility, requests) come on top"
    )
    for name, found in problems.items():
        for problem in sorted(found):
            note(f"{name}: {problem}")
    if not problems:
        note("no import tried the network (every socket connect/send was watched)")

    slowest = max(functions, key=lambda f: median(seconds[f.directory]))
    _, stderr = import_once(
        slowest.module,
        str(REPO / "functions" / slowest.directory),
        environments[slowest.directory],
        "-X",
        "importtime",
        first_call=False,
    )
    profile = import_profile(stderr)
    print()
    print(f"  Where functions/{slowest.directory}'s import goes (one -X importtime run)")
    top = sorted(profile, key=lambda row: row[2], reverse=True)
    top = [row for row in top if row[0] not in ("app", slowest.module)][:5]
    table(
        ["module (by cumulative time)", "depth", "cumulative ms", "self ms"],
        [[name, depth, f"{cum / 1000:.0f}", f"{own / 1000:.1f}"] for name, own, cum, depth in top],
        indent=2,
    )
    by_package: dict[str, int] = defaultdict(int)
    for name, own, _, _ in profile:
        by_package[name.split(".", 1)[0]] += own
    total = sum(by_package.values()) or 1
    print()
    table(
        ["top-level package (self time summed)", "ms", "share"],
        [
            [name, f"{own / 1000:.0f}", f"{100 * own / total:.0f}%"]
            for name, own in sorted(by_package.items(), key=lambda item: -item[1])[:5]
        ],
        indent=2,
    )
    note(f"the whole import under -X importtime: {total / 1000:.0f} ms (the profiler adds some)")

    size = layer_size()
    print()
    print("  The CommonLayer's size")
    note(
        "by package, from this venv's installed files for requirements.txt's closure, pruned as "
        "the Makefile prunes (RUNTIME_DISTS, bin/, __pycache__, .pyc, pkg/tests): the source "
        "alone; the as-deployed build above is the layer itself, with its byte code"
    )
    mb = 1000 * 1000
    rows = [
        [name, f"{value / mb:.2f}"]
        for name, value in sorted(size.by_package.items(), key=lambda item: -item[1])[:6]
    ]
    rows.append(["total unzipped", f"{size.unzipped / mb:.2f}"])
    rows.append(["total zipped (deflate)", f"{size.zipped / mb:.2f}"])
    table(["layer content", "MB"], rows, indent=2)
    note(
        f"{size.files} files; target <= {TARGET_LAYER_MB} MB: "
        f"{'yes' if size.unzipped <= TARGET_LAYER_MB * mb else 'NO'} (unzipped)"
    )
    if size.botocore_from:
        verdict = (
            "removes it: no second botocore in the layer"
            if "botocore" in size.pruned
            else "KEEPS it: a second botocore in the layer"
        )
        note(
            f"botocore is pulled in by {size.botocore_from}; the Makefile's prune {verdict} "
            f"(pruned: {', '.join(size.pruned)})"
        )
    else:
        note("no distribution in requirements.txt's closure pulls in botocore")
    for problem in size.mismatched:
        note(f"venv differs from the pins: {problem}")
    note("this venv's wheels are for its own platform; the layer's (manylinux2014_aarch64) differ")
    note("slightly in size; without byte code (the as-deployed build above has it)")
    note(f"section wall time {time.perf_counter() - started:.0f} s")
