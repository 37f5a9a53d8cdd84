"""The local stack itself (`LocalGatewayStack`): a moto server holding template.yaml's resources,
the fake upstream (or the real one), the gateway's HTTP API, the SQS pollers and the reconciler's
schedule; `start()` returns once all answer and writes out/stack-outputs.json.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from imagegateway.adapters.webhook_secrets import owner_secret
from imagegateway.domain.owners import principal_owner
from local.aws.aws_calls import CallSink, record_aws_calls
from local.aws.lambda_runtime import Invocation, load_handler, poll_queue_once, run_handler
from local.aws.moto_patches import handlers_in_process
from local.aws.principals import ACCOUNT_ROOT
from local.aws.resources import LocalStack, QueueConsumer, build_stack
from local.aws.template import (
    REGION,
    HttpRoute,
    http_api_routes,
    load_template,
    resources_of_type,
)
from local.fake_upstream import FakeUpstream
from local.http_server import BackgroundServer
from local.stack.console import Console
from local.stack.gateway_http import GatewayServer
from local.stack.settings import (
    API_KEYS_TABLE,
    FAKE_DOWNLOAD_SETTINGS,
    LOCAL_KEY_OWNER,
    LOCAL_TASK_CONCURRENCY,
    READY_TIMEOUT_SECONDS,
    RECONCILER_EVENT,
    WEBHOOK_SIGNING_SECRET,
    StackError,
    StackSettings,
    StackUrls,
)


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
        if settings.aws_calls_file:  # before any client exists: each must report its calls
            sink = CallSink(Path(settings.aws_calls_file))
            self._exit.enter_context(record_aws_calls(sink))
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
        master = stack.generated_secrets.get(WEBHOOK_SIGNING_SECRET)
        if master is not None:
            # The local account's own secret: requests put on the local queue or bus (and
            # unsigned HTTP requests) are the local account's (local/aws/principals.py).
            outputs["WebhookSigningSecret"] = owner_secret(
                master, principal_owner(ACCOUNT_ROOT.unique_id)
            )
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
