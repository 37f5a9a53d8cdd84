"""The stack of template.yaml, built inside moto: the tests and `make run` share this, so the
mocks cannot drift from the infrastructure.

Resources are read from template.yaml (the table's keys and TTL, the bucket, the secrets, the
queues with their redrive policies, the event bus and its rules with their targets, the
functions with their handlers, environment and SQS event-source mappings, the state machine
file with its substitutions), never listed again here. Lambda tasks run the real handlers in
this process: moto's `LambdaFunction._invoke_lambda` is patched to import
`functions/<dir>/app.py` and call it. SQS event-source mappings are polled the way Lambda's
poller does it (`poll_queue_once`): moto's own mapping invokes inside the sender's call and
ignores partial batch failures.
"""

from __future__ import annotations

import importlib.util
import io
import json
import re
import secrets
import string
import sys
import threading
import time
import traceback
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple
from unittest import mock

import boto3
from cfnlint.decode import cfn_yaml

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "template.yaml"
ACCOUNT = "123456789012"
REGION = "us-east-1"
STACK = "imagegw-local"


@cache
def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    loaded: dict[str, Any] = cfn_yaml.load(str(path))
    return loaded


def resources_of_type(template: Mapping[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in template["Resources"].items()
        if resource.get("Type") == kind
    }


@dataclass
class LocalStack:
    """Names and ARNs of the resources built in moto, keyed by template logical id."""

    bucket_name: str
    secret_arn: str
    state_machine_arn: str
    table_names: dict[str, str] = field(default_factory=dict)
    function_names: dict[str, str] = field(default_factory=dict)
    function_dirs: dict[str, Path] = field(default_factory=dict)
    # Each function's Timeout from the template (seconds), by its name in moto.
    function_timeouts: dict[str, int] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    # Template parameter values the stack was built with (defaults plus overrides).
    parameters: dict[str, str] = field(default_factory=dict)
    # Every secret by logical id (ARN), and the values generated for those the template lets
    # Secrets Manager generate (the webhook signing key).
    secret_arns: dict[str, str] = field(default_factory=dict)
    generated_secrets: dict[str, str] = field(default_factory=dict)
    queue_urls: dict[str, str] = field(default_factory=dict)
    event_bus_name: str = ""
    # The functions' SQS event-source mappings (see poll_queue_once).
    queue_consumers: list[QueueConsumer] = field(default_factory=list)
    # Resolves the template's intrinsic functions to this stack's names and ARNs.
    resolve: Callable[[Any], str] | None = field(default=None, repr=False)

    def outputs(self, template: Mapping[str, Any] | None = None) -> dict[str, str]:
        """The template's Outputs with this stack's values; an output naming a resource moto
        does not hold here (the HTTP API, a queue) is left out."""
        template = template or load_template()
        values: dict[str, str] = {}
        for name, output in (template.get("Outputs") or {}).items():
            if self.resolve is None:
                break
            try:
                values[name] = self.resolve(output["Value"])
            except KeyError:
                continue
        return values

    @property
    def table_name(self) -> str:
        """The jobs table's name."""
        return self.table_names["JobsTable"]


@dataclass(frozen=True)
class QueueConsumer:
    """An SQS event-source mapping of the template: which function takes which queue's messages,
    how many at a time, and how many invocations at once (its maximum concurrency)."""

    function_name: str
    queue_url: str
    batch_size: int
    max_concurrency: int
    reports_batch_item_failures: bool


class _Resolver:
    """Resolves the intrinsic functions the template uses in environments and substitutions."""

    def __init__(
        self,
        refs: dict[str, str],
        arns: dict[str, str],
        conditions: Mapping[str, Any] | None = None,
    ) -> None:
        self.refs = refs
        self.arns = arns
        self.conditions = dict(conditions or {})

    def __call__(self, value: Any) -> str:
        if isinstance(value, dict):
            if "Ref" in value:
                return self.refs[value["Ref"]]
            if "Fn::If" in value:
                condition, when_true, when_false = value["Fn::If"]
                return self(when_true if self.holds({"Condition": condition}) else when_false)
            if "Fn::GetAtt" in value:
                target = value["Fn::GetAtt"]
                name, attribute = target if isinstance(target, list) else target.split(".", 1)
                if attribute != "Arn":
                    raise KeyError(f"unsupported GetAtt {name}.{attribute}")
                return self.arns[name]
            if "Fn::Sub" in value:
                text = value["Fn::Sub"]
                return re.sub(r"\$\{([^}]+)\}", lambda m: self._sub(m.group(1)), str(text))
            raise KeyError(f"unsupported intrinsic {sorted(value)}")
        return str(value).lower() if isinstance(value, bool) else str(value)

    def holds(self, condition: Mapping[str, Any]) -> bool:
        """A template condition (Fn::Equals, Fn::Not, a named Condition) with these values."""
        if "Condition" in condition:
            return self.holds(self.conditions[condition["Condition"]])
        if "Fn::Equals" in condition:
            left, right = condition["Fn::Equals"]
            return self(left) == self(right)
        if "Fn::Not" in condition:
            return not self.holds(condition["Fn::Not"][0])
        raise KeyError(f"unsupported condition {sorted(condition)}")

    def _sub(self, name: str) -> str:
        if "." in name:
            return self.arns[name.split(".", 1)[0]]
        return self.refs[name]


def _parameters(template: Mapping[str, Any], overrides: Mapping[str, str]) -> dict[str, str]:
    values = {name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()}
    values.update(overrides)
    return values


def _create_table(dynamodb: Any, table_name: str, props: Mapping[str, Any]) -> None:
    """The table as the template declares it: keys, attributes, indexes, TTL."""
    extra: dict[str, Any] = {}
    if props.get("GlobalSecondaryIndexes"):
        extra["GlobalSecondaryIndexes"] = [
            {key: index[key] for key in ("IndexName", "KeySchema", "Projection")}
            for index in props["GlobalSecondaryIndexes"]
        ]
    dynamodb.create_table(
        TableName=table_name,
        KeySchema=props["KeySchema"],
        AttributeDefinitions=props["AttributeDefinitions"],
        BillingMode=props.get("BillingMode", "PAY_PER_REQUEST"),
        **extra,
    )
    ttl = props.get("TimeToLiveSpecification")
    if ttl:
        dynamodb.update_time_to_live(
            TableName=table_name,
            TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
        )


UPSTREAM_KEY_SECRET = "UpstreamApiKeySecret"  # noqa: S105 (a logical id, not a secret)


def _generated_secret(spec: Mapping[str, Any]) -> str:
    """What GenerateSecretString would make: letters and digits (the template excludes
    punctuation), of its length."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(int(spec.get("PasswordLength", 32))))


def _create_queues(
    template: Mapping[str, Any], suffix: str
) -> tuple[dict[str, str], dict[str, str]]:
    """Every queue, with its visibility timeout and retention; redrive policies come after,
    once every queue's ARN is known."""
    sqs = boto3.client("sqs", region_name=REGION)
    urls: dict[str, str] = {}
    arns: dict[str, str] = {}
    for logical_id, queue in resources_of_type(template, "AWS::SQS::Queue").items():
        props = queue.get("Properties", {})
        attributes: dict[Any, str] = {
            key: str(props[key])
            for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds")
            if key in props
        }
        url = sqs.create_queue(QueueName=f"{STACK}-{logical_id}-{suffix}", Attributes=attributes)[
            "QueueUrl"
        ]
        urls[logical_id] = url
        arns[logical_id] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
    return urls, arns


def _apply_redrive_policies(
    template: Mapping[str, Any], urls: Mapping[str, str], resolve: Callable[[Any], str]
) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    for logical_id, queue in resources_of_type(template, "AWS::SQS::Queue").items():
        policy = queue.get("Properties", {}).get("RedrivePolicy")
        if policy:
            redrive = {
                "deadLetterTargetArn": resolve(policy["deadLetterTargetArn"]),
                "maxReceiveCount": int(policy["maxReceiveCount"]),
            }
            sqs.set_queue_attributes(
                QueueUrl=urls[logical_id], Attributes={"RedrivePolicy": json.dumps(redrive)}
            )


def _create_event_buses(
    template: Mapping[str, Any], suffix: str
) -> tuple[dict[str, str], dict[str, str]]:
    events = boto3.client("events", region_name=REGION)
    names: dict[str, str] = {}
    arns: dict[str, str] = {}
    for logical_id in resources_of_type(template, "AWS::Events::EventBus"):
        name = f"{STACK}-{logical_id}-{suffix}"
        arns[logical_id] = events.create_event_bus(Name=name)["EventBusArn"]
        names[logical_id] = name
    return names, arns


def _create_rules(
    template: Mapping[str, Any], suffix: str, resolve: Callable[[Any], str]
) -> dict[str, str]:
    """The rules of the template's own buses, with their targets (moto delivers to SQS)."""
    events = boto3.client("events", region_name=REGION)
    arns: dict[str, str] = {}
    for logical_id, rule in resources_of_type(template, "AWS::Events::Rule").items():
        props = rule.get("Properties", {})
        if "EventBusName" not in props or "EventPattern" not in props:
            continue  # a schedule or the default bus: nothing local delivers there
        bus = resolve(props["EventBusName"])
        name = f"{STACK}-{logical_id}-{suffix}"
        arns[logical_id] = events.put_rule(
            Name=name, EventBusName=bus, EventPattern=json.dumps(props["EventPattern"])
        )["RuleArn"]
        targets: list[Any] = [
            {"Id": str(target["Id"]), "Arn": resolve(target["Arn"])}
            for target in props.get("Targets", [])
        ]
        if targets:
            events.put_targets(Rule=name, EventBusName=bus, Targets=targets)
    return arns


def _queue_consumers(
    function_name: str,
    resource: Mapping[str, Any],
    resolve: Callable[[Any], str],
    queue_urls: Mapping[str, str],
) -> list[QueueConsumer]:
    consumers = []
    for event in (resource.get("Properties", {}).get("Events") or {}).values():
        if event.get("Type") != "SQS":
            continue
        props = event["Properties"]
        queue = props["Queue"]
        target = queue.get("Fn::GetAtt") if isinstance(queue, dict) else None
        logical_id = target[0] if isinstance(target, list) else str(target).split(".")[0]
        scaling = props.get("ScalingConfig", {})
        consumers.append(
            QueueConsumer(
                function_name=function_name,
                queue_url=queue_urls[logical_id],
                batch_size=int(props.get("BatchSize", 10)),
                max_concurrency=int(resolve(scaling.get("MaximumConcurrency", 2))),
                reports_batch_item_failures="ReportBatchItemFailures"
                in props.get("FunctionResponseTypes", []),
            )
        )
    return consumers


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
    it to the dead-letter queue after its last receive. Returns how many messages it took."""
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


def _sqs_record(message: Mapping[str, Any], queue_arn: str) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": dict(message.get("MessageAttributes", {})),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def _zip_placeholder() -> bytes:
    # moto wants a code package; the handlers run in-process from the working tree instead.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def lambda_handler(event, context):\n    return event\n")
    return buffer.getvalue()


def build_stack(
    *,
    api_key: str,
    parameters: Mapping[str, str] | None = None,
    extra_environment: Mapping[str, str] | None = None,
    template: Mapping[str, Any] | None = None,
) -> LocalStack:
    """Create the template's table, bucket, secret, functions and state machine in moto (the
    in-process mock or a moto server, whichever boto3 currently reaches)."""
    template = template or load_template()
    params = _parameters(template, parameters or {})
    tables = resources_of_type(template, "AWS::DynamoDB::Table")
    ((bucket_id, _bucket),) = resources_of_type(template, "AWS::S3::Bucket").items()
    ((machine_id, machine),) = resources_of_type(template, "AWS::Serverless::StateMachine").items()
    functions = resources_of_type(template, "AWS::Serverless::Function")

    suffix = uuid.uuid4().hex[:8]
    table_names = {name: f"{STACK}-{name}-{suffix}".lower() for name in tables}
    bucket_name = f"{STACK}-{bucket_id}-{suffix}".lower()
    machine_name = f"{STACK}-{machine_id}-{suffix}"
    machine_arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{machine_name}"
    function_names = {name: f"{STACK}-{name}-{suffix}" for name in functions}
    function_arns = {
        name: f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{fn}"
        for name, fn in function_names.items()
    }

    dynamodb = boto3.client("dynamodb", region_name=REGION)
    for name, table in tables.items():
        _create_table(dynamodb, table_names[name], table["Properties"])

    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=bucket_name)
    s3.put_public_access_block(
        Bucket=bucket_name,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )

    secretsmanager = boto3.client("secretsmanager", region_name=REGION)
    secret_arns: dict[str, str] = {}
    generated_secrets: dict[str, str] = {}
    for logical_id, secret in resources_of_type(template, "AWS::SecretsManager::Secret").items():
        generate = secret.get("Properties", {}).get("GenerateSecretString")
        if logical_id == UPSTREAM_KEY_SECRET:
            value = api_key
        elif generate is not None:
            value = generated_secrets[logical_id] = _generated_secret(generate)
        else:
            continue  # a secret the operator fills in: none besides the upstream key today
        secret_arns[logical_id] = secretsmanager.create_secret(
            Name=f"{STACK}/{logical_id}/{suffix}", SecretString=value
        )["ARN"]
    secret_arn = secret_arns[UPSTREAM_KEY_SECRET]

    queue_urls, queue_arns = _create_queues(template, suffix)
    bus_names, bus_arns = _create_event_buses(template, suffix)
    refs = {
        **params,
        **table_names,
        bucket_id: bucket_name,
        **secret_arns,
        **queue_urls,
        **bus_names,
        machine_id: machine_arn,
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT,
        "AWS::StackName": STACK,
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::Partition": "aws",
        **function_names,
    }
    resolve = _Resolver(
        refs,
        {**function_arns, **queue_arns, **bus_arns, machine_id: machine_arn},
        template.get("Conditions", {}),
    )
    _apply_redrive_policies(template, queue_urls, resolve)
    rule_arns = _create_rules(template, suffix, resolve)
    resolve.arns.update(rule_arns)

    iam = boto3.client("iam", region_name=REGION)
    role_arn = iam.create_role(
        RoleName=f"{STACK}-role-{suffix}",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]

    globals_fn = template.get("Globals", {}).get("Function", {})
    global_env = globals_fn.get("Environment", {}).get("Variables", {})
    lambda_client = boto3.client("lambda", region_name=REGION)
    environment: dict[str, str] = {}
    function_dirs: dict[str, Path] = {}
    function_timeouts: dict[str, int] = {}
    for name, resource in functions.items():
        fn_props = resource["Properties"]
        env_spec = {**global_env, **fn_props.get("Environment", {}).get("Variables", {})}
        env = {key: resolve(value) for key, value in env_spec.items()}
        env.update(extra_environment or {})
        environment.update(env)
        code_dir = REPO / str(fn_props["CodeUri"])
        function_dirs[function_names[name]] = code_dir
        timeout = int(fn_props.get("Timeout", globals_fn.get("Timeout", 30)))
        function_timeouts[function_names[name]] = timeout
        lambda_client.create_function(
            FunctionName=function_names[name],
            Runtime=fn_props.get("Runtime", globals_fn.get("Runtime", "python3.12")),
            Role=role_arn,
            Handler=str(fn_props.get("Handler", globals_fn.get("Handler", "app.lambda_handler"))),
            Code={"ZipFile": _zip_placeholder()},
            Timeout=timeout,
            Environment={"Variables": env},
        )

    machine_props = machine["Properties"]
    definition = (REPO / str(machine_props["DefinitionUri"])).read_text()
    substitutions = {
        key: resolve(value) for key, value in machine_props["DefinitionSubstitutions"].items()
    }
    definition = re.sub(r"\$\{([^}]+)\}", lambda m: substitutions[m.group(1)], definition)
    boto3.client("stepfunctions", region_name=REGION).create_state_machine(
        name=machine_name,
        definition=definition,
        roleArn=role_arn,
        type="EXPRESS"
        if resolve(machine_props.get("Type", "STANDARD")) == "EXPRESS"
        else "STANDARD",
    )

    consumers = [
        consumer
        for name, resource in functions.items()
        for consumer in _queue_consumers(function_names[name], resource, resolve, queue_urls)
    ]

    return LocalStack(
        secret_arns=secret_arns,
        generated_secrets=generated_secrets,
        queue_urls=queue_urls,
        event_bus_name=next(iter(bus_names.values()), ""),
        queue_consumers=consumers,
        table_names=table_names,
        bucket_name=bucket_name,
        secret_arn=secret_arn,
        state_machine_arn=machine_arn,
        function_names=function_names,
        function_dirs=function_dirs,
        function_timeouts=function_timeouts,
        environment=environment,
        parameters=params,
        resolve=resolve,
    )


# --- running the real handlers in-process ---------------------------------------------------


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


@contextmanager
def handlers_in_process(
    stack: LocalStack,
    before_invoke: InvokeHook | None = None,
    *,
    on_invoke: InvocationObserver | None = None,
    one_at_a_time: bool = False,
    max_concurrency: int | Mapping[str, int] | None = None,
    record: bool = True,
) -> Iterator[list[dict[str, Any]]]:
    """Patch moto so invoking one of the stack's functions calls its real handler here.

    Yields the list of invocations (function, event, error), for tests to inspect. A raised
    exception is reported the way the Lambda runtime reports it: errorType is the class name,
    which is what the state machine's Retry and Catch match on. `before_invoke` may raise to
    simulate a function dying. The local stack also passes `on_invoke` (told of every call, to
    log it), `one_at_a_time` (see `function_lock`) and `record=False` (a long-running process
    keeps no list).
    """
    from moto.awslambda.models import LambdaFunction

    invocations: list[dict[str, Any]] = []
    original = LambdaFunction._invoke_lambda

    def invoke(self: LambdaFunction, event: str | None = None) -> tuple[str, bool, str]:
        code_dir = stack.function_dirs.get(self.function_name)
        if code_dir is None:
            return original(self, event)
        payload = json.loads(event) if isinstance(event, str | bytes) else (event or {})
        entry: dict[str, Any] = {"function": self.function_name, "event": payload}
        if record:
            invocations.append(entry)
        try:
            result = run_handler(
                stack,
                self.function_name,
                payload,
                handler=self.handler or "app.lambda_handler",
                before_invoke=before_invoke,
                on_invoke=on_invoke,
                one_at_a_time=one_at_a_time,
                max_concurrency=max_concurrency,
            )
        except Exception as exc:  # the runtime turns any exception into a function error
            # An exception may name the Lambda error it stands for (e.g. "Sandbox.Timedout").
            error_type = str(getattr(exc, "lambda_error_type", type(exc).__name__))
            entry["error"] = error_type
            error = {
                "errorType": error_type,
                "errorMessage": str(exc),
                "stackTrace": traceback.format_exception(exc)[-3:],
            }
            return json.dumps(error), True, ""
        return json.dumps(result), False, ""

    with (
        mock.patch.object(LambdaFunction, "_invoke_lambda", invoke),
        _sfn_integration_with_api_names(),
    ):
        yield invocations


def _sfn_integration_with_api_names() -> AbstractContextManager[Any]:
    """moto 5.2's `states:startExecution` integration hands the ASL's field names
    (StateMachineArn, Name, Input) to boto3 unchanged, and the Step Functions API spells them
    stateMachineArn, name, input, so every start fails; AWS maps them. The local stack maps
    them too (the HandOver state of an Express machine uses this integration)."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_sfn,
    )

    service = state_task_service_sfn.StateTaskServiceSfn
    original = service._normalise_parameters

    def normalise(self: Any, parameters: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        original(self, parameters, *args, **kwargs)
        for key in list(parameters):
            api_name = key[:1].lower() + key[1:]
            if api_name != key:
                parameters[api_name] = parameters.pop(key)

    return mock.patch.object(service, "_normalise_parameters", normalise)


# --- the HTTP API's routes ------------------------------------------------------------------

DEFAULT_ROUTE = "$default"


class HttpRoute(NamedTuple):
    """One route of the HTTP API, as a function's `HttpApi` event declares it."""

    method: str  # upper case; "ANY" matches every method
    path: str  # the template's path, e.g. /sd/{kind}/v1/status/{job_id}; "$default" for catch-all
    function: str  # the function's logical id

    @property
    def route_key(self) -> str:
        return DEFAULT_ROUTE if self.path == DEFAULT_ROUTE else f"{self.method} {self.path}"


def http_api_routes(template: Mapping[str, Any] | None = None) -> list[HttpRoute]:
    """Every route the template's functions declare with events of type HttpApi, once: the IAM
    API and the keyed API serve the same routes with the same functions, and the local server
    serves both (auth per request). An event with neither Path nor Method is the API's $default
    route (SAM's rule)."""
    template = template or load_template()
    routes: dict[str, HttpRoute] = {}
    for name, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        events = resource.get("Properties", {}).get("Events") or {}
        for event in events.values():
            if event.get("Type") != "HttpApi":
                continue
            props = event.get("Properties") or {}
            if "Path" not in props and "Method" not in props:
                route = HttpRoute("ANY", DEFAULT_ROUTE, str(name))
            else:
                method = str(props.get("Method", "ANY")).upper()
                if method == "X-AMAZON-APIGATEWAY-ANY-METHOD":
                    method = "ANY"
                route = HttpRoute(method, str(props.get("Path", "/")), str(name))
            known = routes.setdefault(route.route_key, route)
            if known.function != route.function:
                raise ValueError(f"{route.route_key} goes to {known.function} and {route.function}")
    return list(routes.values())
