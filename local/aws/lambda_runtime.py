"""The Lambda runtime, here: the stack's functions run with their real handlers in this process
(`run_handler`: a fresh context per call, one invocation at a time or a reserved concurrency,
an observer told of every call), and an SQS event-source mapping is polled the way Lambda's
poller does it (`poll_queue_once`).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3

from local.aws.aws_calls import calls_made_by, logical_id_of
from local.aws.principals import SENDER_ATTRIBUTE, local_principal
from local.aws.resources import LocalStack, QueueConsumer
from local.aws.template import ACCOUNT, REGION


@dataclass
class LambdaContext:
    """The attributes of the Lambda context object that Powertools reads."""

    function_name: str
    memory_limit_in_mb: int = 256
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = ""
    log_group_name: str = ""
    log_stream_name: str = ""
    deadline_ms: int = field(default_factory=lambda: int(time.time() * 1000) + 30_000)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.deadline_ms - int(time.time() * 1000))


@cache
def load_handler(code_dir: Path, handler: str = "app.lambda_handler") -> Callable[..., Any]:
    module_file, function = handler.rsplit(".", 1)
    path = code_dir / f"{module_file.replace('.', '/')}.py"
    name = f"functions.{code_dir.name}.{module_file}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module: ModuleType = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    handler_function: Callable[..., Any] = getattr(module, function)
    return handler_function


InvokeHook = Callable[[str, Any], None]


@dataclass(frozen=True)
class Invocation:
    """One run of a real handler, as reported to an `on_invoke` observer."""

    function: str  # the function's code directory, e.g. "check_upstream"
    function_name: str  # its name in moto
    event: Any
    result: Any = None  # what the handler returned (None when it raised)
    error: BaseException | None = None
    duration_ms: float = 0.0
    # "invoke" for a Lambda Invoke (the state machine's tasks), else what triggered it (a route)
    trigger: str = "invoke"

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def job_id(self) -> str | None:
        """The job the invocation was about, when its event or its answer names one."""
        return _job_id_in_event(self.event) or _job_id_in_result(self.result)


def _job_id_in_event(event: Any) -> str | None:
    if not isinstance(event, dict):
        return None
    if isinstance(event.get("job_id"), str):
        return str(event["job_id"])
    params = event.get("pathParameters")
    if isinstance(params, dict) and isinstance(params.get("job_id"), str):
        return str(params["job_id"])
    return None


def _job_id_in_result(result: Any) -> str | None:
    if not isinstance(result, dict):
        return None
    if isinstance(result.get("job_id"), str):
        return str(result["job_id"])
    body = result.get("body")
    if isinstance(body, str) and body.startswith("{") and not result.get("isBase64Encoded"):
        try:
            answer = json.loads(body)
        except ValueError:
            return None
        if isinstance(answer, dict) and isinstance(answer.get("id"), str):
            return str(answer["id"])
    return None


InvocationObserver = Callable[[Invocation], None]

_function_locks: dict[str, threading.Lock] = {}
_function_locks_guard = threading.Lock()


def function_lock(function_name: str) -> threading.Lock:
    """The lock that makes a function run one invocation at a time, like a single warm Lambda
    execution environment. Handlers keep per-invocation state in module globals (the Powertools
    resolver's current event, the Logger's keys), which concurrent threads would share."""
    with _function_locks_guard:
        return _function_locks.setdefault(function_name, threading.Lock())


_function_slots: dict[str, threading.BoundedSemaphore] = {}


def function_slots(function_name: str, slots: int) -> threading.BoundedSemaphore:
    """At most `slots` invocations of the function at once, like a reserved concurrency: a
    burst of workflow tasks then queues instead of starving the HTTP handlers of the GIL."""
    with _function_locks_guard:
        return _function_slots.setdefault(function_name, threading.BoundedSemaphore(slots))


def run_handler(
    stack: LocalStack,
    function_name: str,
    event: Any,
    *,
    handler: str = "app.lambda_handler",
    trigger: str = "invoke",
    before_invoke: InvokeHook | None = None,
    on_invoke: InvocationObserver | None = None,
    one_at_a_time: bool = False,
    max_concurrency: int | Mapping[str, int] | None = None,
) -> Any:
    """Run one of the stack's functions with its real handler, here, as the Lambda runtime
    would: a fresh context per call. Returns what the handler returns and raises what it
    raises; `on_invoke` hears about every call, either way."""
    code_dir = stack.function_dirs[function_name]
    timeout_ms = stack.function_timeouts.get(function_name, 30) * 1000
    context = LambdaContext(
        function_name=function_name,
        invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}",
        deadline_ms=int(time.time() * 1000) + timeout_ms,
    )
    lock: AbstractContextManager[Any] = nullcontext()
    if one_at_a_time:
        lock = function_lock(function_name)
    elif isinstance(max_concurrency, Mapping):
        slots = max_concurrency.get(code_dir.name, max_concurrency.get("*"))
        if slots is not None:
            lock = function_slots(function_name, slots)
    elif max_concurrency is not None:
        lock = function_slots(function_name, max_concurrency)
    result: Any = None
    error: BaseException | None = None
    with lock:
        started = time.perf_counter()
        try:
            if before_invoke is not None:
                before_invoke(function_name, event)
            with calls_made_by(logical_id_of(stack, function_name), stack):
                result = load_handler(code_dir, handler)(event, context)
        except Exception as exc:
            error = exc
            raise
        finally:
            if on_invoke is not None:
                on_invoke(
                    Invocation(
                        function=code_dir.name,
                        function_name=function_name,
                        event=event,
                        result=result,
                        error=error,
                        duration_ms=(time.perf_counter() - started) * 1000,
                        trigger=trigger,
                    )
                )
    return result


def poll_queue_once(
    stack: LocalStack,
    consumer: QueueConsumer,
    *,
    wait_seconds: int = 0,
    run: Callable[[str, dict[str, Any]], Any] | None = None,
) -> int:
    """One turn of Lambda's SQS poller for an event-source mapping: receive up to a batch, invoke
    the function with the event Lambda would build, delete what succeeded (every record, or
    those not named in its batchItemFailures). A failed record stays: it comes back when its
    visibility timeout ends (the handler may have set it), and the queue's redrive policy moves
    it to the dead-letter queue after its last receive. Returns how many messages it took.

    The poller's own calls (receive, delete) are made with the function's role, as Lambda's
    are: the role must grant them (AWSLambdaSQSQueueExecutionRole)."""
    with calls_made_by(logical_id_of(stack, consumer.function_name), stack):
        return _poll_queue_once(stack, consumer, wait_seconds, run)


def _poll_queue_once(
    stack: LocalStack,
    consumer: QueueConsumer,
    wait_seconds: int,
    run: Callable[[str, dict[str, Any]], Any] | None,
) -> int:
    sqs = boto3.client("sqs", region_name=REGION)
    answer = sqs.receive_message(
        QueueUrl=consumer.queue_url,
        MaxNumberOfMessages=min(consumer.batch_size, 10),
        WaitTimeSeconds=wait_seconds,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    )
    messages = answer.get("Messages", [])
    if not messages:
        return 0
    queue_arn = sqs.get_queue_attributes(QueueUrl=consumer.queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    event = {"Records": [_sqs_record(message, queue_arn) for message in messages]}
    invoke = run or (lambda name, payload: run_handler(stack, name, payload))
    try:
        result = invoke(consumer.function_name, event)
    except Exception:
        return len(messages)  # the whole batch comes back (the observer reported the error)
    failed = set()
    if consumer.reports_batch_item_failures and isinstance(result, dict):
        failed = {item["itemIdentifier"] for item in result.get("batchItemFailures", [])}
    done = [m for m in messages if m["MessageId"] not in failed]
    if done:
        sqs.delete_message_batch(
            QueueUrl=consumer.queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)
            ],
        )
    return len(messages)


def _sender_id(message: Mapping[str, Any]) -> str:
    """Who SQS says sent the message. moto names one made-up user for every message; locally a
    message is from the local account, or from the IAM user its `LocalSender` attribute names
    (local/aws/principals.py), as `X-Local-Caller` chooses the caller of an HTTP request. A
    name IAM would refuse is passed on as is, for the gateway to refuse."""
    attribute = message.get("MessageAttributes", {}).get(SENDER_ATTRIBUTE, {})
    name = attribute.get("StringValue")
    try:
        return local_principal(name).unique_id
    except ValueError:
        return str(name)


def _sqs_record(message: Mapping[str, Any], queue_arn: str) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {**message.get("Attributes", {}), "SenderId": _sender_id(message)},
        "messageAttributes": dict(message.get("MessageAttributes", {})),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }
