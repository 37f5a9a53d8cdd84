"""What a cold start imports: each function's handler module, imported by a fresh interpreter in a
Lambda-like environment (tracing live), loads only what its import needs. The X-Ray SDK, the
idempotency, parameters and batch utilities, the OpenAPI models, boto3, S3 transfers and
requests are loaded at first use; the HTTP event handler only by the HTTP functions. Structure
only: the bench (`make bench`) times it.

And tracing stays available: the first traced invocation makes Powertools' Tracer, which patches
botocore and requests as they are imported (without importing them); with
POWERTOOLS_TRACE_DISABLED it loads nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
FUNCTIONS = sorted(path.parent.name for path in (ROOT / "functions").glob("*/app.py"))
LAYER = ROOT / "layers" / "common"
HTTP_FUNCTIONS = {"submit", "job_status"}

# Loaded when first used, by no function's import.
AT_FIRST_USE = (
    "aws_xray_sdk",
    "aws_lambda_powertools.utilities.idempotency",
    "aws_lambda_powertools.utilities.parameters",
    "aws_lambda_powertools.utilities.batch",
    "aws_lambda_powertools.event_handler.openapi.models",
    "boto3",
    "s3transfer",
    "requests",
)
# Operators' tools shipped in the package: loaded by no function at all.
OPERATOR_TOOLS = ("imagegateway.entrypoints.key_admin",)

IMPORT_APP = r"""
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import app
print(json.dumps(sorted(sys.modules)))
"""


def lambda_environment(task_root: Path, **extra: str) -> dict[str, str]:
    """A Lambda-like environment: LAMBDA_TASK_ROOT and a function name make tracing live."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_LAMBDA_FUNCTION_NAME": "cold-imports",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "LAMBDA_TASK_ROOT": str(task_root),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR",
        "POWERTOOLS_SERVICE_NAME": "imagepipeline-gateway",
        **extra,
    }


def run_child(code: str, *args: str, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(  # noqa: S603 - our own interpreter, fixed code
        [sys.executable, "-I", "-c", code, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def loaded(modules: list[str], package: str) -> bool:
    return any(name == package or name.startswith(f"{package}.") for name in modules)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_cold_import_loads_only_what_the_import_needs(function: str) -> None:
    directory = ROOT / "functions" / function
    modules: list[str] = json.loads(
        run_child(
            IMPORT_APP, str(directory), str(LAYER), env=lambda_environment(directory), cwd=directory
        )
    )
    assert "imagegateway.entrypoints.handlers" in modules  # the import did happen
    assert [name for name in AT_FIRST_USE if loaded(modules, name)] == []
    assert [name for name in OPERATOR_TOOLS if loaded(modules, name)] == []
    http = loaded(modules, "aws_lambda_powertools.event_handler")
    assert http == (function in HTTP_FUNCTIONS)


TRACED_CALL = r"""
import json, sys
sys.path[:0] = [sys.argv[1]]
from imagegateway.platform.observability import tracer

class Context:
    function_name = "cold-imports"
    aws_request_id = "request-1"

@tracer.capture_lambda_handler
def handler(event, context):
    return {"ok": event["n"]}

def patched():
    patcher = sys.modules.get("aws_xray_sdk.core.patcher")
    return sorted(patcher._PATCHED_MODULES) if patcher else []

before = "aws_xray_sdk" in sys.modules
answers = [handler({"n": n}, Context()) for n in (1, 2)]
requests_at_first_call = "requests" in sys.modules  # the tracer does not import it
import requests  # as a function's first call to the upstream does, after the first invocation
print(json.dumps({"before": before, "after": "aws_xray_sdk" in sys.modules,
                  "requests_at_first_call": requests_at_first_call, "patched": patched(),
                  "answers": answers}))
"""


def test_the_first_traced_invocation_starts_tracing_botocore_and_requests(
    tmp_path: Path,
) -> None:
    seen = json.loads(
        run_child(TRACED_CALL, str(LAYER), env=lambda_environment(tmp_path), cwd=tmp_path)
    )
    assert seen == {
        "before": False,
        "after": True,
        "requests_at_first_call": False,
        "patched": ["botocore", "requests"],
        "answers": [{"ok": 1}, {"ok": 2}],
    }


def test_with_tracing_disabled_the_xray_sdk_is_never_loaded(tmp_path: Path) -> None:
    environment = lambda_environment(tmp_path, POWERTOOLS_TRACE_DISABLED="true")
    seen = json.loads(run_child(TRACED_CALL, str(LAYER), env=environment, cwd=tmp_path))
    assert seen == {
        "before": False,
        "after": False,
        "requests_at_first_call": False,
        "patched": [],
        "answers": [{"ok": 1}, {"ok": 2}],
    }
