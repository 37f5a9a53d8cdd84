"""What `make run` starts, read from the environment (the settings listed in the package's
docstring), and the URLs it answers on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from local.aws.template import (
    REPO,
    load_template,
)

HOST = "127.0.0.1"
DEFAULT_GATEWAY_PORT = 3000
DEFAULT_MOTO_PORT = 5000
DEFAULT_FAKE_PORT = 8081
DEFAULT_FAKE_API_KEY = "local-dev-key"
DEFAULT_UPSTREAM_BASE_URL = "https://api.imagepipeline.io"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
READY_TIMEOUT_SECONDS = 20.0

# Locally: Powertools quiet (one readable line per invocation instead), no X-Ray, and no EMF
# metric lines on stdout. Timing settings keep the deployed template's values.
LOCAL_FUNCTION_DEFAULTS = {
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",
}
# Workflow task invocations of one function running at once locally ("*": any function without
# its own entry). A status check that polls in-function mostly sleeps, so many run at once.
LOCAL_TASK_CONCURRENCY: dict[str, int] = {"*": 4, "check_upstream": 64}
WEBHOOK_SIGNING_SECRET = "WebhookSigningSecret"  # noqa: S105 (the template's logical id)
API_KEYS_TABLE = "ApiKeysTable"
# The owner of the key the local stack issues for itself (LocalApiKey).
LOCAL_KEY_OWNER = "local-api-key"
# The deployed reconciler runs every 5 minutes; locally every RECONCILE_INTERVAL_SECONDS.
DEFAULT_RECONCILE_INTERVAL_SECONDS = 30.0
OUTPUTS_FILE = REPO / "out" / "stack-outputs.json"
RECONCILER_EVENT = REPO / "events" / "reconciler.json"
# The fake upstream serves its images over plain http on 127.0.0.1, which the deployed
# gateway refuses to fetch from.
FAKE_DOWNLOAD_SETTINGS = {"ALLOW_INSECURE_DOWNLOADS": "true", "DOWNLOAD_ALLOWED_HOSTS": HOST}
# Variables the stack itself owns (resource names and ARNs): never taken from the environment.
_OWNED_VARIABLE = re.compile(r"(_TABLE_NAME|_BUCKET_NAME|_ARN|_SECRET_NAME)$")


class StackError(Exception):
    """The stack cannot start (a setting is invalid, a port is taken...)."""


def _port(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) > 65535:
        raise StackError(f"{name} must be a port number (0 picks a free one), not {raw!r}")
    return int(raw)


def _template_parameter_variables(template: Mapping[str, Any]) -> dict[str, str]:
    """{function variable: template parameter} for every `VAR: !Ref Parameter` of Globals."""
    variables = template.get("Globals", {}).get("Function", {}).get("Environment", {})
    mapping: dict[str, str] = {}
    for name, value in (variables.get("Variables") or {}).items():
        if isinstance(value, dict) and str(value.get("Ref", "")) in template["Parameters"]:
            mapping[str(name)] = str(value["Ref"])
    return mapping


def _function_setting_names() -> set[str]:
    from imagegateway.platform.settings import Settings

    return {name.upper() for name in Settings.model_fields}


@dataclass(frozen=True)
class StackSettings:
    """What `make run` starts, read from the environment (see the module docstring)."""

    gateway_port: int = DEFAULT_GATEWAY_PORT
    moto_port: int = DEFAULT_MOTO_PORT
    fake_port: int = DEFAULT_FAKE_PORT
    fake_api_key: str = field(default=DEFAULT_FAKE_API_KEY, repr=False)
    fake_pending_polls: int = 2
    # IMAGEPIPELINE_API_KEY: when set, the real upstream is used instead of the fake.
    upstream_api_key: str | None = field(default=None, repr=False)
    upstream_base_url: str = DEFAULT_UPSTREAM_BASE_URL
    log_level: str = "WARNING"
    reconcile_interval_seconds: float = DEFAULT_RECONCILE_INTERVAL_SECONDS
    # Where the stack's outputs are written once it is ready (STACK_OUTPUTS_FILE).
    outputs_file: str = str(OUTPUTS_FILE)
    # LOCAL_AWS_CALLS_FILE: when set, every AWS call a function makes is appended there as a
    # JSON line (local/aws/aws_calls.py), for the tests to check against the function's role.
    aws_calls_file: str = ""
    # Template parameters and function variables given in the environment.
    parameters: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    host: str = HOST

    @property
    def uses_fake(self) -> bool:
        return self.upstream_api_key is None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> StackSettings:
        template = load_template()
        log_level = environ.get("LOG_LEVEL", "WARNING").strip().upper() or "WARNING"
        if log_level == "WARN":
            log_level = "WARNING"
        if log_level not in LOG_LEVELS:
            raise StackError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
        pending = environ.get("FAKE_PENDING_POLLS", "2").strip() or "2"
        if not pending.isdigit():
            raise StackError(f"FAKE_PENDING_POLLS must be a whole number, not {pending!r}")
        real_key = environ.get("IMAGEPIPELINE_API_KEY", "").strip() or None
        fake_key = environ.get("FAKE_UPSTREAM_API_KEY", "").strip() or DEFAULT_FAKE_API_KEY

        by_variable = _template_parameter_variables(template)
        parameters: dict[str, str] = {}
        environment = dict(LOCAL_FUNCTION_DEFAULTS)
        for name in sorted(_function_setting_names() | set(by_variable)):
            value = environ.get(name)
            if value is None or _OWNED_VARIABLE.search(name):
                continue
            if name in by_variable:
                parameters[by_variable[name]] = value
            else:
                environment[name] = value
        for name in ("POWERTOOLS_TRACE_DISABLED", "POWERTOOLS_METRICS_DISABLED"):
            environment[name] = environ.get(name, environment[name])
        upstream_base_url = environ.get("UPSTREAM_BASE_URL", "").strip()
        interval = environ.get("RECONCILE_INTERVAL_SECONDS", "").strip()
        try:
            reconcile_interval = float(interval) if interval else DEFAULT_RECONCILE_INTERVAL_SECONDS
        except ValueError:
            reconcile_interval = -1
        if not reconcile_interval > 0:
            raise StackError(
                f"RECONCILE_INTERVAL_SECONDS must be a positive number, not {interval!r}"
            )
        return cls(
            reconcile_interval_seconds=reconcile_interval,
            outputs_file=environ.get("STACK_OUTPUTS_FILE", "").strip() or str(OUTPUTS_FILE),
            aws_calls_file=environ.get("LOCAL_AWS_CALLS_FILE", "").strip(),
            gateway_port=_port(environ, "GATEWAY_PORT", DEFAULT_GATEWAY_PORT),
            moto_port=_port(environ, "MOTO_PORT", DEFAULT_MOTO_PORT),
            fake_port=_port(environ, "FAKE_UPSTREAM_PORT", DEFAULT_FAKE_PORT),
            fake_api_key=fake_key,
            fake_pending_polls=int(pending),
            upstream_api_key=real_key,
            upstream_base_url=upstream_base_url or DEFAULT_UPSTREAM_BASE_URL,
            log_level=log_level,
            parameters=parameters,
            environment=environment,
        )


@dataclass
class StackUrls:
    gateway: str
    moto: str
    upstream: str
