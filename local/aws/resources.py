"""The template's resources created in moto (`build_stack`): tables, bucket, secrets, queues with
their redrive policies, the event bus and its rules, the functions (with their environment and
SQS event-source mappings) and the state machine with its substitutions; `LocalStack` names them.
"""

from __future__ import annotations

import io
import json
import re
import secrets
import string
import uuid
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from local.aws.template import ACCOUNT, REGION, REPO, STACK, load_template, resources_of_type


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


def create_table(dynamodb: Any, table_name: str, props: Mapping[str, Any]) -> None:
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
    """The template's buses. Their resource policies (AWS::Events::EventBusPolicy: only the
    gateway's roles may put its Source) are deliberately not applied: moto does not enforce
    EventBridge resource policies, and locally every function shares one role, so the policy
    would name roles that do not exist here. tests/template/test_event_bus_policy.py holds the
    deployed policy instead."""
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
        create_table(dynamodb, table_names[name], table["Properties"])

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
