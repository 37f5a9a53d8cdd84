"""`make run`: the whole gateway on this machine, in the foreground. No Docker, no AWS account,
no API key.

On 127.0.0.1 it starts:
- a moto server (MOTO_PORT, default 5000) holding the resources of template.yaml, built by
  `local.aws_stack.build_stack`: the table, the bucket, the secret, the functions and the state
  machine from statemachine/, which moto's ASL interpreter executes; its Lambda tasks run the
  real handlers in this process;
- the fake upstream (FAKE_UPSTREAM_PORT, default 8081), unless IMAGEPIPELINE_API_KEY is set:
  then the stack calls the real upstream (UPSTREAM_BASE_URL, default https://api.imagepipeline.io);
- the gateway's HTTP API (GATEWAY_PORT, default 3000), routed as the template routes it
  (`local.gateway_http`);
- the template's SQS event-source mappings (the request queue's intake, the webhook deliveries),
  polled as Lambda polls them, with their maximum concurrency; the bus's rules deliver to their
  queues in moto; and a local CompletionQueue subscribed to every completion event, to watch.

It prints a line containing `ready` with the three URLs once all of them answer, then one line
per Lambda invocation. Ctrl-C or SIGTERM stops everything (exit 0). A port of 0 picks a free one
(the ready line tells which).

Settings, from the environment:
  GATEWAY_PORT, MOTO_PORT, FAKE_UPSTREAM_PORT   the three ports
  FAKE_UPSTREAM_API_KEY (local-dev-key), FAKE_PENDING_POLLS (2)   the fake upstream
  IMAGEPIPELINE_API_KEY, UPSTREAM_BASE_URL      the real upstream instead of the fake
  LOG_LEVEL (WARNING)                           the functions' Powertools log level
  RECONCILE_INTERVAL_SECONDS (30), STACK_OUTPUTS_FILE (out/stack-outputs.json)
  POLL_INTERVAL_SECONDS, JOB_DEADLINE_SECONDS and any other setting the functions read
  (platform.settings; the template's values unless set), passed to them as the template's
  parameter or variable.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import Any, TextIO

import boto3

from local.aws_stack import (
    REGION,
    REPO,
    HttpRoute,
    Invocation,
    LocalStack,
    QueueConsumer,
    build_stack,
    handlers_in_process,
    http_api_routes,
    load_handler,
    load_template,
    poll_queue_once,
    resources_of_type,
    run_handler,
)
from local.fake_upstream import FakeUpstream
from local.gateway_http import DEFAULT_CALLER, GatewayServer
from local.http_server import BackgroundServer

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


# --------------------------------------------------------------------------- settings


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


# --------------------------------------------------------------------------- output


class Console:
    """Thread-safe, line-at-a-time output with a time stamp."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def line(self, text: str) -> None:
        stamp = datetime.now().strftime("%H:%M:%S.%f")[:-3]
        stream = self._stream or sys.stdout
        with self._lock:
            stream.write(f"{stamp} {text}\n")
            stream.flush()

    def invocation(self, call: Invocation) -> None:
        """One line per Lambda invocation: function, job, duration, outcome (and, for an HTTP
        request, its route and status)."""
        outcome = "ok" if call.error is None else f"error {type(call.error).__name__}"
        if call.error is not None and str(call.error):
            outcome += f": {str(call.error).splitlines()[0][:200]}"
        extra = ""
        if call.trigger != "invoke":
            # API Gateway answers 500 for a failed invocation, 200 for an answer without status.
            status: Any = 500
            if call.error is None:
                answer = call.result if isinstance(call.result, dict) else {}
                status = answer.get("statusCode", 200)
            extra = f"  {call.trigger} -> {status}"
        job = call.job_id or "-"
        self.line(
            f"[invoke] {call.function:<14} job={job:<36} {call.duration_ms:>6.0f} ms  "
            f"{outcome}{extra}"
        )


class _Redacting(io.TextIOBase):
    """A text stream that writes through, with a secret replaced by ***."""

    def __init__(self, target: TextIO, secret: str) -> None:
        self._target = target
        self._secret = secret

    def write(self, text: str) -> int:
        self._target.write(text.replace(self._secret, "***"))
        return len(text)

    def flush(self) -> None:
        self._target.flush()

    def isatty(self) -> bool:
        return self._target.isatty()


def redact_output(secret: str) -> None:
    """Belt and braces for the real API key: nothing this process prints can show it."""
    sys.stdout = _Redacting(sys.stdout, secret)
    sys.stderr = _Redacting(sys.stderr, secret)


# --------------------------------------------------------------------------- the stack


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # an HTTP answer, even an error, means the server is up
    except (OSError, ValueError):
        return False


def _wait_until_answering(urls: Mapping[str, str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    waiting = dict(urls)
    while waiting:
        waiting = {name: url for name, url in waiting.items() if not _answers(url)}
        if waiting and time.monotonic() > deadline:
            raise StackError(f"no answer from {', '.join(waiting)} after {timeout:.0f} s")
        if waiting:
            time.sleep(0.1)


def _post_json(url: str, payload: Any) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        response.read()


def _point_boto3_at(moto_url: str, moto_port: int) -> None:
    """This process's boto3 (build_stack, the handlers) and moto's own ASL interpreter reach
    the moto server, with fake credentials, whatever the developer's AWS configuration."""
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL_") or name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
            del os.environ[name]
    os.environ.update(
        {
            "MOTO_PORT": str(moto_port),  # read by moto's ASL interpreter to invoke Lambda
            "AWS_ENDPOINT_URL": moto_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }
    )


def _moto_server(host: str, port: int) -> Any:
    from moto.server import ThreadedMotoServer

    class MotoServer(ThreadedMotoServer):
        """ThreadedMotoServer waits forever when it cannot bind: report the error instead."""

        startup_error: BaseException | None = None

        def _server_entry(self) -> None:
            try:
                super()._server_entry()
            except BaseException as exc:
                self.startup_error = exc
                self._server_ready_event.set()

    server = MotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    error = server.startup_error
    if error is not None:
        # werkzeug reports a taken port itself (on stderr) and exits: SystemExit carries no text
        why = "" if isinstance(error, SystemExit) else f": {error}"
        raise StackError(f"moto server: cannot listen on {host}:{port}{why}")
    return server


def _no_cold_start_metric() -> None:
    """Powertools prints the ColdStart metric even with metrics disabled; locally every function
    shares one process (and one cold start flag), so mark it warm once the handlers are loaded."""
    from aws_lambda_powertools.metrics.provider import cold_start

    cold_start.is_cold_start = False


def _handler_name(template: Mapping[str, Any], logical_id: str) -> str:
    globals_fn = template.get("Globals", {}).get("Function", {})
    props = resources_of_type(template, "AWS::Serverless::Function")[logical_id]["Properties"]
    return str(props.get("Handler", globals_fn.get("Handler", "app.lambda_handler")))


@dataclass
class StackUrls:
    gateway: str
    moto: str
    upstream: str


class LocalGatewayStack:
    """The three servers and the stack built in moto; `start()` returns once all answer."""

    def __init__(self, settings: StackSettings, console: Console | None = None) -> None:
        self.settings = settings
        self.console = console or Console()
        self.stack: LocalStack | None = None
        self.urls: StackUrls | None = None
        self.routes: list[HttpRoute] = []
        self.outputs: dict[str, str] = {}
        self.completion_queue_url = ""
        self.local_api_key = ""
        self._exit = contextlib.ExitStack()

    def start(self) -> StackUrls:
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> StackUrls:
        settings = self.settings
        say = self.console.line
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", message="No application metrics to publish")

        moto = _moto_server(settings.host, settings.moto_port)
        self._exit.callback(moto.stop)
        moto_host, moto_port = moto.get_host_and_port()
        moto_url = f"http://{moto_host}:{moto_port}"
        _point_boto3_at(moto_url, moto_port)
        _post_json(
            f"{moto_url}/moto-api/config", {"stepfunctions": {"execute_state_machine": True}}
        )
        say(f"[stack] moto server on {moto_url} (S3, DynamoDB, Secrets Manager, Step Functions)")

        extra = dict(settings.environment)
        if settings.uses_fake:
            fake = FakeUpstream(
                api_key=settings.fake_api_key,
                pending_polls=settings.fake_pending_polls,
                host=settings.host,
                port=settings.fake_port,
            )
            self._serve("fake upstream", fake)
            upstream_url, api_key = fake.base_url, settings.fake_api_key
            for name, value in FAKE_DOWNLOAD_SETTINGS.items():
                extra.setdefault(name, value)
            say(
                f"[stack] fake upstream on {upstream_url} "
                f"(PENDING for {settings.fake_pending_polls} status checks, then SUCCESS)"
            )
        else:
            assert settings.upstream_api_key is not None
            upstream_url, api_key = settings.upstream_base_url, settings.upstream_api_key
            say(f"[stack] real upstream {upstream_url} (IMAGEPIPELINE_API_KEY is set)")

        parameters = {
            "LogLevel": settings.log_level,
            **settings.parameters,
            "UpstreamBaseUrl": upstream_url,
        }
        template = load_template()
        stack = build_stack(api_key=api_key, parameters=parameters, extra_environment=extra)
        self.stack = stack
        os.environ.update(stack.environment)
        self._check_function_settings()
        for logical_id, function_name in stack.function_names.items():
            load_handler(stack.function_dirs[function_name], _handler_name(template, logical_id))
        if os.environ.get("POWERTOOLS_METRICS_DISABLED", "").lower() == "true":
            _no_cold_start_metric()
        # Workflow tasks run concurrently, like Lambda's many execution environments: a slow
        # upstream POST of one job must not hold up the others; a few at a time per function, so
        # a burst does not starve the HTTP routes, which run one at a time (the Powertools
        # resolver keeps the current request in a module global).
        self._exit.enter_context(
            handlers_in_process(
                stack,
                on_invoke=self.console.invocation,
                max_concurrency=LOCAL_TASK_CONCURRENCY,
                record=False,
            )
        )
        env = stack.environment
        machine = resources_of_type(template, "AWS::Serverless::StateMachine")
        definition = next(iter(machine.values()))["Properties"]["DefinitionUri"]
        say(
            f"[stack] built template.yaml in moto: {len(stack.function_names)} functions, "
            f"state machine from {definition}; jobs: deadline {env.get('JOB_DEADLINE_SECONDS')} s, "
            f"first poll after {env.get('POLL_INTERVAL_SECONDS')} s"
        )

        self.routes = http_api_routes(template)
        handlers = {
            route.function: _handler_name(template, route.function) for route in self.routes
        }

        def invoke(route: HttpRoute, event: dict[str, Any]) -> Any:
            return run_handler(
                stack,
                stack.function_names[route.function],
                event,
                handler=handlers[route.function],
                trigger=route.route_key,
                on_invoke=self.console.invocation,
                one_at_a_time=True,
            )

        authorize = self._key_authorizer(stack, template)
        gateway = GatewayServer(
            self.routes,
            invoke,
            host=settings.host,
            port=settings.gateway_port,
            authorize=authorize,
        )
        self._serve("gateway", gateway)
        for route in self.routes:
            say(f"[stack] route {route.route_key} -> {route.function}")

        checks = {"moto": f"{moto_url}/moto-api/config", "gateway": f"{gateway.base_url}/"}
        if settings.uses_fake:
            checks["fake upstream"] = f"{upstream_url}/__fake__/stats"
        _wait_until_answering(checks, READY_TIMEOUT_SECONDS)
        gateway.log = say  # from now on: requests no function answered (no such route...)
        self.urls = StackUrls(gateway=gateway.base_url, moto=moto_url, upstream=upstream_url)
        self.completion_queue_url = self._subscribe_completion_queue(stack)
        self._start_queue_consumers(stack, template)
        self._start_reconciler(stack, template)
        self.outputs = self._write_outputs(stack, template, self.urls, api_key)
        return self.urls

    def _start_reconciler(self, stack: LocalStack, template: Mapping[str, Any]) -> None:
        """Run the reconciler as its schedule does when deployed, every interval."""
        ((logical_id, _),) = (
            (name, fn)
            for name, fn in resources_of_type(template, "AWS::Serverless::Function").items()
            if fn["Properties"].get("CodeUri", "").rstrip("/").endswith("reconciler")
        )
        function_name = stack.function_names[logical_id]
        handler = _handler_name(template, logical_id)
        event = json.loads(RECONCILER_EVENT.read_text())
        stop = threading.Event()
        interval = self.settings.reconcile_interval_seconds

        def run() -> None:
            while not stop.wait(interval):
                with contextlib.suppress(Exception):  # reported by on_invoke; the next run retries
                    run_handler(
                        stack,
                        function_name,
                        dict(event),
                        handler=handler,
                        trigger="schedule",
                        on_invoke=self._quiet_reconciler,
                        one_at_a_time=True,
                    )

        thread = threading.Thread(target=run, name="reconciler-schedule", daemon=True)
        thread.start()
        self._exit.callback(thread.join, 5)
        self._exit.callback(stop.set)
        self.console.line(f"[stack] reconciler runs every {interval:g} s")

    def _key_authorizer(
        self, stack: LocalStack, template: Mapping[str, Any]
    ) -> Callable[[str], str | None]:
        """The keyed API's authorizer, the real function run as API Gateway runs it; and one key
        issued for this stack (LocalApiKey in the outputs)."""
        from imagegateway.adapters.api_key_store import ApiKeyStore

        (logical_id,) = (
            name
            for name, fn in resources_of_type(template, "AWS::Serverless::Function").items()
            if fn["Properties"].get("CodeUri", "").rstrip("/").endswith("authorizer")
        )
        function_name = stack.function_names[logical_id]
        table = stack.table_names[API_KEYS_TABLE]
        self.local_api_key = ApiKeyStore(table).issue(LOCAL_KEY_OWNER, now=datetime.now(UTC))

        def authorize(key: str) -> str | None:
            event = {
                "version": "2.0",
                "type": "REQUEST",
                "identitySource": [key],
                "headers": {"api-key": key},
            }
            try:
                answer = run_handler(stack, function_name, event, trigger="authorizer")
            except Exception:  # API Gateway answers an authorizer's failure with a refusal
                return None
            if not (isinstance(answer, dict) and answer.get("isAuthorized")):
                return None
            owner = (answer.get("context") or {}).get("owner")
            return str(owner) if owner else None

        return authorize

    def _subscribe_completion_queue(self, stack: LocalStack) -> str:
        """A local queue that receives every completion event on the gateway's bus, so a
        developer (or a test) can watch them: `aws sqs receive-message` on CompletionQueueUrl."""
        sqs = boto3.client("sqs", region_name=REGION)
        events = boto3.client("events", region_name=REGION)
        url = sqs.create_queue(QueueName=f"{stack.event_bus_name}-completions")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        rule = f"{stack.event_bus_name}-completions"
        from imagegateway.domain.events import EVENT_SOURCE, DetailType

        kinds = [DetailType.SUCCEEDED.value, DetailType.FAILED.value]
        pattern = {"source": [EVENT_SOURCE], "detail-type": kinds}
        events.put_rule(
            Name=rule, EventBusName=stack.event_bus_name, EventPattern=json.dumps(pattern)
        )
        events.put_targets(
            Rule=rule, EventBusName=stack.event_bus_name, Targets=[{"Id": "watch", "Arn": arn}]
        )
        return str(url)

    def _start_queue_consumers(self, stack: LocalStack, template: Mapping[str, Any]) -> None:
        """Each SQS event-source mapping, polled by as many threads as its maximum concurrency."""
        stop = threading.Event()
        names = {name: logical for logical, name in stack.function_names.items()}

        def consume(consumer: QueueConsumer) -> None:
            handler = _handler_name(template, names[consumer.function_name])

            def run(function_name: str, event: dict[str, Any]) -> Any:
                return run_handler(
                    stack,
                    function_name,
                    event,
                    handler=handler,
                    trigger="sqs",
                    on_invoke=self.console.invocation,
                )

            while not stop.is_set():
                try:
                    poll_queue_once(stack, consumer, wait_seconds=1, run=run)
                except Exception:  # moto stopping, a transient error: the next poll retries
                    stop.wait(1)

        threads = [
            threading.Thread(target=consume, args=(consumer,), name=f"sqs-{i}", daemon=True)
            for consumer in stack.queue_consumers
            for i in range(consumer.max_concurrency)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            self._exit.callback(thread.join, 5)
        self._exit.callback(stop.set)
        for consumer in stack.queue_consumers:
            self.console.line(
                f"[stack] queue {consumer.queue_url.rsplit('/', 1)[-1]} -> "
                f"{consumer.function_name} ({consumer.max_concurrency} at a time)"
            )

    def _quiet_reconciler(self, call: Invocation) -> None:
        """A reconciler run is logged only when it did something (or failed)."""
        result = call.result if isinstance(call.result, dict) else {}
        if call.error is not None or result.get("examined"):
            self.console.invocation(call)

    def _write_outputs(
        self, stack: LocalStack, template: Mapping[str, Any], urls: StackUrls, api_key: str
    ) -> dict[str, str]:
        """out/stack-outputs.json: the template's Outputs with their local values, plus the
        local-only keys tools need (the moto endpoint, the fake upstream)."""
        outputs = {
            **stack.outputs(template),
            "ApiUrl": urls.gateway,
            # One local server serves both APIs: API-Key requests as the keyed one.
            "ApiKeyUrl": urls.gateway,
            "AwsEndpointUrl": urls.moto,
            "Region": REGION,
            "CompletionQueueUrl": self.completion_queue_url,
        }
        if self.local_api_key:
            outputs["LocalApiKey"] = self.local_api_key
        signing_key = stack.generated_secrets.get(WEBHOOK_SIGNING_SECRET)
        if signing_key is not None:
            outputs["WebhookSigningSecret"] = f"whsec_{signing_key}"
        if self.settings.uses_fake:
            outputs["FakeUpstreamUrl"] = urls.upstream
        path = self.settings.outputs_file
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        temporary = f"{path}.{os.getpid()}.tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(outputs, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.replace(temporary, path)  # readers never see a half-written file
        return outputs

    def _serve(self, name: str, server: BackgroundServer) -> None:
        """Start one of the stack's servers, stopped with the stack; a taken port is named."""
        try:
            server.start()
        except OSError as exc:
            where = f"{server.host}:{server.port}"
            raise StackError(f"{name}: cannot listen on {where}: {exc}") from exc
        self._exit.callback(server.stop)

    def _check_function_settings(self) -> None:
        """Fail now, with the reason, rather than in every invocation."""
        from pydantic import ValidationError

        from imagegateway.platform.settings import Settings

        try:
            Settings.from_environment(os.environ)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
                for err in exc.errors()
            )
            raise StackError(f"invalid function setting: {problems}") from exc

    def stop(self) -> None:
        self._exit.close()


def ready_line(urls: StackUrls) -> str:
    """The line that says the stack is up; tools parse the name=url pairs."""
    return f"[stack] ready gateway={urls.gateway} moto={urls.moto} upstream={urls.upstream}"


def _usage_hint(urls: StackUrls) -> list[str]:
    return [
        "[stack] try it:",
        f"  curl -s {urls.gateway}/sd/text2image/v1 -H 'Content-Type: application/json' "
        "--data-binary @events/text2image_request.json",
        f"  curl -s {urls.gateway}/sd/text2image/v1/status/<id>",
        f"  (requests run as user/{DEFAULT_CALLER}; header 'X-Local-Caller: <name>' "
        "runs one as user/<name>)",
        "[stack] Ctrl-C stops everything",
    ]


# --------------------------------------------------------------------------- as a subprocess

PARENT_PID_VARIABLE = "LOCAL_STACK_PARENT_PID"
_READY = re.compile(r"\[stack\] ready gateway=(\S+) moto=(\S+) upstream=(\S+)")


class StackProcess:
    """`python -m local.stack` as a child process (for `make demo` and the e2e tests): started
    on free ports unless told otherwise, waited for until ready, stopped with SIGTERM.

    The child runs in its own session, so a Ctrl-C meant for the parent reaches it only as the
    parent's SIGTERM, and it stops by itself if the parent dies.
    """

    def __init__(
        self,
        environment: Mapping[str, str] | None = None,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        self.environment = {
            "GATEWAY_PORT": "0",
            "MOTO_PORT": "0",
            "FAKE_UPSTREAM_PORT": "0",
            **(environment or {}),
        }
        self.echo = echo
        self.lines: list[str] = []
        self.urls: StackUrls | None = None
        self.returncode: int | None = None
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._ready = threading.Event()

    def start(self, timeout: float = 60.0) -> StackUrls:
        env = {
            **os.environ,
            **self.environment,
            "PYTHONUNBUFFERED": "1",
            PARENT_PID_VARIABLE: str(os.getpid()),
        }
        self._process = subprocess.Popen(
            [sys.executable, "-m", "local.stack"],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, name="stack-output", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.1):
            if self._process.poll() is not None:
                self._reader.join(timeout=5)
                raise StackError(
                    f"the stack exited with {self._process.returncode} before it was ready:\n"
                    + self.output(last=30)
                )
            if time.monotonic() > deadline:
                self.stop()
                raise StackError(
                    f"the stack was not ready after {timeout:.0f} s:\n" + self.output(last=30)
                )
        assert self.urls is not None
        return self.urls

    def _read(self) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        for raw in self._process.stdout:
            line = raw.rstrip("\n")
            self.lines.append(line)
            if self.echo is not None:
                self.echo(line)
            found = _READY.search(line)
            if found and not self._ready.is_set():
                self.urls = StackUrls(*found.groups())
                self._ready.set()

    def output(self, last: int | None = None) -> str:
        lines = list(self.lines)
        return "\n".join(lines[-last:] if last else lines)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then wait (SIGKILL after `timeout`); returns the exit code."""
        process = self._process
        if process is None:
            return self.returncode or 0
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self._reader is not None:
            self._reader.join(timeout=5)
        self.returncode = process.returncode
        return process.returncode

    def __enter__(self) -> StackProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- main


def main() -> int:
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            os._exit(130)  # a second Ctrl-C while stopping: give up on a clean stop
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)

    console = Console()
    try:
        settings = StackSettings.from_environment(os.environ)
        if settings.upstream_api_key and len(settings.upstream_api_key) >= 6:
            redact_output(settings.upstream_api_key)
        stack = LocalGatewayStack(settings, console)
        urls = stack.start()
    except StackError as exc:
        console.line(f"[stack] error: {exc}")
        return 1
    try:
        console.line(ready_line(urls))
        for line in _usage_hint(urls):
            console.line(line)
        parent = os.environ.get(PARENT_PID_VARIABLE, "")
        while not stop.wait(0.5):
            if parent.isdigit() and os.getppid() != int(parent):
                console.line("[stack] the process that started the stack is gone")
                break
        console.line("[stack] stopping")
    finally:
        stack.stop()
    console.line("[stack] stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
