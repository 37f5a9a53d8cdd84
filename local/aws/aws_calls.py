"""Every AWS call the stack's functions make, recorded with the function that made it, so the
tests can check each against that function's role in the template (tests/support/iam_proof.py).

`run_handler` (and Lambda's SQS poller, which acts with the function's role) mark the running
function with `calls_made_by`; while `record_aws_calls` is active, every boto3 client reports
each API call and each presigned URL (a URL is signed with the role, so its reader needs the
role's grant too) with the function marked at that moment. Calls outside a function (the tests'
own, moto's ASL interpreter, building the stack) are not recorded.

The mark is a ContextVar: a handler's thread pools (image copies, s3transfer's parts) run their
work in the submitter's context while recording, as Python 3.14's threads may; a thread started
bare (moto's execution threads) starts unmarked.
"""

from __future__ import annotations

import contextvars
import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from unittest import mock

from botocore.session import Session

from local.aws.resources import LocalStack
from local.aws.template import ACCOUNT, REGION, STACK, load_template

# The parameters that name what a call acts on; nothing else is kept (bodies may be large).
RESOURCE_PARAMETERS = (
    "Bucket",
    "Key",
    "TableName",
    "IndexName",
    "QueueUrl",
    "QueueName",
    "SecretId",
    "stateMachineArn",
    "executionArn",
    "FunctionName",
)


@dataclass(frozen=True)
class Caller:
    """The function whose role a call is made with, in which local stack."""

    function: str  # the template's logical id, e.g. "StoreImagesFunction"
    stack: str  # the stack's key (its state machine's ARN: unique per build)


@dataclass(frozen=True)
class AwsCall:
    """One API call (or presigned URL) a function made, as much of it as IAM looks at."""

    function: str
    stack: str
    service: str  # the IAM prefix (the signing name): s3, dynamodb, states, events...
    operation: str  # the API's operation name, e.g. PutObject
    params: dict[str, Any]
    presigned: bool = False


_caller: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("aws_caller", default=None)
# What a stack's resources are called (`stack_names`), by stack key: each is told to the sink
# once, before its first call.
_known_stacks: dict[str, dict[str, dict[str, str]]] = {}
_known_stacks_guard = threading.Lock()


def stack_key(stack: LocalStack) -> str:
    return stack.state_machine_arn


def stack_names(stack: LocalStack) -> dict[str, dict[str, str]]:
    """What the template's Ref / GetAtt Arn / GetAtt Name of each resource is in this stack,
    plus the pseudo parameters: what a role's statements are resolved with."""
    refs: dict[str, str] = {}
    arns: dict[str, str] = {}
    names: dict[str, str] = {}
    for logical_id, table in stack.table_names.items():
        refs[logical_id] = table
        arns[logical_id] = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}"
    bucket_id = next(
        name
        for name, resource in load_template()["Resources"].items()
        if resource.get("Type") == "AWS::S3::Bucket"
    )
    refs[bucket_id] = stack.bucket_name
    arns[bucket_id] = f"arn:aws:s3:::{stack.bucket_name}"
    refs.update(stack.secret_arns)
    for logical_id, url in stack.queue_urls.items():
        refs[logical_id] = url
        arns[logical_id] = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{url.rsplit('/', 1)[-1]}"
    if stack.resolve is not None:
        for logical_id in load_template()["Resources"]:
            wanted = ((refs, {"Ref": logical_id}), (arns, {"Fn::GetAtt": [logical_id, "Arn"]}))
            for target, intrinsic in wanted:
                if logical_id not in target:
                    try:
                        target[logical_id] = stack.resolve(intrinsic)
                    except KeyError:
                        continue  # a resource moto does not hold here (the HTTP API...)
    for logical_id, arn in arns.items():
        if ":stateMachine:" in arn:
            names[logical_id] = arn.rsplit(":", 1)[-1]
    refs.update(
        {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": STACK,
        }
    )
    return {"Ref": refs, "Arn": arns, "Name": names}


@contextmanager
def calls_made_by(function: str, stack: LocalStack) -> Iterator[None]:
    """AWS calls made inside are the function's (made with its role)."""
    key = stack_key(stack)
    with _known_stacks_guard:
        if key not in _known_stacks:
            _known_stacks[key] = stack_names(stack)
    token = _caller.set(Caller(function, key))
    try:
        yield
    finally:
        _caller.reset(token)


def logical_id_of(stack: LocalStack, function_name: str) -> str:
    """The template's logical id of a function, from its name in moto."""
    for logical_id, name in stack.function_names.items():
        if name == function_name:
            return logical_id
    return function_name


class CallSink:
    """Where recorded calls go: a list here, or JSON lines in a file (another process's)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.calls: list[AwsCall] = []
        self.stacks: dict[str, dict[str, dict[str, str]]] = {}
        self._lock = threading.Lock()

    def add(self, call: AwsCall) -> None:
        with self._lock:
            new_stack = call.stack not in self.stacks
            if new_stack:
                self.stacks[call.stack] = _known_stacks[call.stack]
            self.calls.append(call)
            if self.path is not None:
                with self.path.open("a", encoding="utf-8") as out:
                    if new_stack:
                        line = {"stack": call.stack, "names": self.stacks[call.stack]}
                        out.write(json.dumps(line) + "\n")
                    out.write(json.dumps({"call": asdict(call)}) + "\n")

    @staticmethod
    def read(path: Path) -> CallSink:
        """The calls another process wrote to `path`."""
        sink = CallSink()
        if not path.exists():
            return sink
        for line in path.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            if "stack" in entry:
                sink.stacks[entry["stack"]] = entry["names"]
            else:
                sink.calls.append(AwsCall(**entry["call"]))
        return sink


def _resource_params(params: dict[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {
        name: params[name] for name in RESOURCE_PARAMETERS if isinstance(params.get(name), str)
    }
    source = params.get("CopySource")
    if isinstance(source, dict):
        kept["CopySource"] = {k: v for k, v in source.items() if k in ("Bucket", "Key")}
    elif isinstance(source, str):
        kept["CopySource"] = source
    entries = params.get("Entries")
    if isinstance(entries, list):  # events:PutEvents: each entry names its bus
        kept["EventBusNames"] = [
            entry.get("EventBusName", "default") for entry in entries if isinstance(entry, dict)
        ]
    return kept


@contextmanager
def record_aws_calls(sink: CallSink) -> Iterator[CallSink]:
    """Every client created inside reports its calls to `sink` (made by a marked function)."""
    create_client = Session.create_client
    submit = ThreadPoolExecutor.submit

    def on_params(params: dict[str, Any], model: Any, context: Any = None, **_: Any) -> None:
        caller = _caller.get()
        if caller is None:
            return
        service = model.service_model
        sink.add(
            AwsCall(
                function=caller.function,
                stack=caller.stack,
                service=str(service.signing_name or service.endpoint_prefix),
                operation=str(model.name),
                params=_resource_params(params),
                presigned=bool(isinstance(context, dict) and context.get("is_presign_request")),
            )
        )

    def recording_client(self: Session, *args: Any, **kwargs: Any) -> Any:
        client = create_client(self, *args, **kwargs)
        # provide-client-params fires once per call (retries are not calls) and per presign.
        client.meta.events.register("provide-client-params.*.*", on_params)
        return client

    def submit_in_context(
        self: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> Future[Any]:
        return submit(self, contextvars.copy_context().run, fn, *args, **kwargs)

    with (
        mock.patch.object(Session, "create_client", recording_client),
        mock.patch.object(ThreadPoolExecutor, "submit", submit_in_context),
    ):
        yield sink
