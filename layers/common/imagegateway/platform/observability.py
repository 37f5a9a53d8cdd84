"""The one place Logger, Tracer and Metrics are made; every module imports them from here.

It is also where other libraries' logging is held back. With `LogLevel=DEBUG` the Lambda
runtime sets the ROOT logger to DEBUG (advanced logging controls), so every library's debug
records would reach CloudWatch: botocore's include each raw response body (the upstream API key
in `GetSecretValue`'s `SecretString`), urllib3's the request lines, the X-Ray SDK's whole trace
segments. The upstream key must be in no log line at any level, so those libraries are pinned
to WARNING (or the root's level, if higher) whatever the root level is; our own logger still
follows `LogLevel`. A redaction filter on the handlers present at import is a second guard.

The Tracer is made at the first traced invocation, not at import (`LazyTracer`): making one
imports the X-Ray SDK, whose recorder and patches cost a cold start tens of milliseconds, and
nothing is traced before the first invocation anyway. Only botocore and requests are patched
(what the gateway calls AWS and the upstream with), not every library the SDK knows, and each
when it is imported (a post-import hook), so a function that never calls the upstream does not
import requests for its tracer, and one that imports it at first use is still traced.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.shared import constants
from aws_lambda_powertools.shared.functions import resolve_truthy_env_var_choice

# Libraries whose DEBUG/INFO records carry wire data (bodies, headers, URLs, trace segments).
QUIET_LIBRARIES = ("botocore", "boto3", "s3transfer", "urllib3", "requests", "aws_xray_sdk")

# Secret values as they appear in wire dumps, each with what replaces it: a `SecretString` or
# `SecretBinary` JSON field (its value runs to the quote that ends the field, so a JSON secret
# nested in it goes too), and an API key header or field, in a dict repr or on the wire.
_REDACTIONS = (
    (
        re.compile(r'("Secret(?:String|Binary)"\s*:\s*)".*?"(?=\s*(?:,\s*"\w+"\s*:|\}|$))'),
        r'\1"***"',
    ),
    (re.compile(r"""(api[-_]?key['"]?\s*[:=]\s*b?['"]?)[^'"\s,;}\\]+""", re.IGNORECASE), r"\1***"),
)


def redact_secrets(text: str) -> str:
    """`text` with the values of secret fields and API key headers replaced by `***`."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecretsFilter(logging.Filter):
    """Rewrites a record whose formatted message holds a secret field or a key header."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot be formatted: leave it to the handler
            return True
        redacted = redact_secrets(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def quiet_libraries() -> None:
    """Pin the wire-logging libraries to WARNING (or the root's level, if higher), and let their
    children inherit that, whatever level the root logger has now or is given later."""
    floor = max(logging.WARNING, logging.getLogger().getEffectiveLevel())
    for name in QUIET_LIBRARIES:
        library = logging.getLogger(name)
        if library.level < floor:
            library.setLevel(floor)
    prefixes = tuple(f"{name}." for name in QUIET_LIBRARIES)
    for name, child in list(logging.Logger.manager.loggerDict.items()):
        if (
            name.startswith(prefixes)
            and isinstance(child, logging.Logger)
            and logging.NOTSET < child.level < floor
        ):
            child.setLevel(logging.NOTSET)


def guard_handlers(*handlers: logging.Handler) -> None:
    """Add the redaction filter (once) to these handlers and to the root logger's."""
    for handler in (*handlers, *logging.getLogger().handlers):
        if not any(isinstance(existing, RedactSecretsFilter) for existing in handler.filters):
            handler.addFilter(RedactSecretsFilter())


# The libraries whose calls become X-Ray subsegments: AWS (botocore) and the upstream (requests).
TRACED_LIBRARIES = ("botocore", "requests")

F = TypeVar("F", bound=Callable[..., Any])


def tracing_disabled() -> bool:
    """Powertools' own rule: POWERTOOLS_TRACE_DISABLED, or not in Lambda (no LAMBDA_TASK_ROOT),
    or in SAM's or Chalice's local emulators. Read at every call: tests set it as they go."""
    if resolve_truthy_env_var_choice(env=os.getenv(constants.TRACER_DISABLED_ENV, "false")):
        return True
    return not os.getenv(constants.LAMBDA_TASK_ROOT_ENV) or bool(
        os.getenv(constants.SAM_LOCAL_ENV) or os.getenv(constants.CHALICE_LOCAL_ENV)
    )


def _patcher(tracer: Tracer, name: str) -> Callable[[object], None]:
    def patch(module: object) -> None:
        tracer.patch(modules=(name,))

    return patch


class LazyTracer:
    """Powertools' Tracer, made when a traced invocation first needs it, with the same decorators
    (`capture_lambda_handler`, `capture_method`). While tracing is disabled (tests, the local
    stack, POWERTOOLS_TRACE_DISABLED) the decorated functions run as they are and the X-Ray SDK
    is never imported."""

    def __init__(self, patch_modules: tuple[str, ...] = TRACED_LIBRARIES) -> None:
        self._patch_modules = patch_modules
        self._tracer: Tracer | None = None
        self._lock = threading.Lock()

    @property
    def tracer(self) -> Tracer:
        """The Powertools Tracer (made, and its libraries patched, on first use)."""
        if self._tracer is None:
            import wrapt

            with self._lock:
                if self._tracer is None:
                    tracer = Tracer(auto_patch=False)
                    for name in self._patch_modules:
                        # Now if already imported, else when it is (wrapt ships with the SDK).
                        wrapt.register_post_import_hook(_patcher(tracer, name), name)
                    quiet_libraries()  # the X-Ray SDK's loggers exist from now on
                    self._tracer = tracer
        return self._tracer

    def _traced(self, function: F, decorate: Callable[[Tracer, F], Callable[..., Any]]) -> F:
        traced: list[Callable[..., Any]] = []  # decorated, once tracing is first found enabled

        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            if tracing_disabled():
                return function(*args, **kwargs)
            if not traced:
                traced.append(decorate(self.tracer, function))
            return traced[0](*args, **kwargs)

        return cast(F, run)

    def capture_lambda_handler(self, lambda_handler: F) -> F:
        """The handler in a `## <name>` subsegment, cold start annotated (Powertools')."""
        return self._traced(lambda_handler, lambda tracer, f: tracer.capture_lambda_handler(f))

    def capture_method(self, method: F) -> F:
        """A function in its own `## <name>` subsegment (Powertools')."""
        return self._traced(method, lambda tracer, f: tracer.capture_method(f))


def one_at_a_time(metrics: Metrics) -> Metrics:
    """Powertools' Metrics, whose set one invocation changes at a time. In Lambda a process runs
    one invocation at a time; the local stack runs several handlers in one process on threads,
    and there a flush could find its set emptied (SchemaValidationError) or changed (a
    RuntimeError) by another invocation's, failing a task for nothing."""
    provider = metrics.provider
    lock = threading.RLock()
    add_metric, flush_metrics = provider.add_metric, provider.flush_metrics

    @functools.wraps(add_metric)
    def add_metric_alone(*args: Any, **kwargs: Any) -> None:
        with lock:
            add_metric(*args, **kwargs)

    @functools.wraps(flush_metrics)
    def flush_metrics_alone(*args: Any, **kwargs: Any) -> None:
        with lock:
            flush_metrics(*args, **kwargs)

    provider.add_metric = add_metric_alone  # type: ignore[method-assign]
    provider.flush_metrics = flush_metrics_alone  # type: ignore[method-assign]
    return metrics


def count_by(name: str, **dimensions: str) -> None:
    """One count of `name` with dimensions of its own (beside `service`), e.g. failed jobs by
    error code, so a dashboard can chart each value apart. Written at once as its own EMF line:
    the invocation's shared metric set has one set of dimensions for all its metrics."""
    with single_metric(name=name, unit=MetricUnit.Count, value=1) as metric:
        for dimension, value in dimensions.items():
            metric.add_dimension(name=dimension, value=value)


logger = Logger()
tracer = LazyTracer()
metrics = one_at_a_time(Metrics())

quiet_libraries()
guard_handlers(logger.registered_handler)
