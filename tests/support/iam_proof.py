"""The roles proven sufficient: every AWS call a function made while the tests ran (recorded by
local/aws/aws_calls.py) must be allowed by that function's role in the translated template.

tests/template/test_permissions.py keeps the least-privilege side (each role is exactly a
table); this is the other side, from the code's real calls: a path that calls one more action
than its role grants fails here, naming the function, the IAM action and the resource, instead
of meeting AccessDenied on its first deploy.

Each call becomes the IAM requests it needs (`iam_requests`: an action and a resource ARN;
CopyObject is two), and each request is evaluated against the role's statements with their
intrinsics resolved to the local stack's names (`RolePolicies`), with IAM's rules: an explicit
Deny wins, else any Allow; `*` and `?` wildcards, actions case-insensitive.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import unquote

from local.aws.aws_calls import AwsCall, CallSink
from local.aws.template import ACCOUNT, REGION
from tests.template.support import as_list, load_template, resources_of_type, translate_offline

# The AWS managed policies the template attaches, as AWS publishes them (their actions, on "*").
MANAGED_POLICIES: dict[str, list[str]] = {
    "AWSLambdaBasicExecutionRole": [
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    ],
    "AWSLambdaSQSQueueExecutionRole": [
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    ],
    "AWSXrayWriteOnlyAccess": [
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
        "xray:GetSamplingStatisticSummaries",
    ],
}

# API operations whose IAM action is another's (a batch is authorized as its single action;
# S3's multipart steps and HEAD are PutObject / GetObject).
ACTION_OF_OPERATION: dict[tuple[str, str], str] = {
    ("sqs", "DeleteMessageBatch"): "DeleteMessage",
    ("sqs", "SendMessageBatch"): "SendMessage",
    ("sqs", "ChangeMessageVisibilityBatch"): "ChangeMessageVisibility",
    ("s3", "HeadObject"): "GetObject",
    ("s3", "CreateMultipartUpload"): "PutObject",
    ("s3", "UploadPart"): "PutObject",
    ("s3", "CompleteMultipartUpload"): "PutObject",
    ("s3", "ListParts"): "ListMultipartUploadParts",
    ("s3", "ListObjectsV2"): "ListBucket",
    ("s3", "HeadBucket"): "ListBucket",
    ("lambda", "Invoke"): "InvokeFunction",
}

Request = tuple[str, str]  # (IAM action, resource ARN)


@dataclass(frozen=True)
class Statement:
    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    not_actions: bool = False
    not_resources: bool = False


def _pattern(text: str, *, ignore_case: bool) -> re.Pattern[str]:
    """IAM's wildcards: `*` any run of characters (across `:` and `/`), `?` any one."""
    body = "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char) for char in text
    )
    return re.compile(body, re.IGNORECASE if ignore_case else 0)


def _matches(patterns: Iterable[str], value: str, *, ignore_case: bool) -> bool:
    return any(_pattern(p, ignore_case=ignore_case).fullmatch(value) for p in patterns)


def allows(statements: Iterable[Statement], action: str, resource: str) -> bool:
    """IAM's evaluation within one identity policy set: an explicit Deny wins, else an Allow."""
    allowed = False
    for statement in statements:
        action_matches = _matches(statement.actions, action, ignore_case=True)
        resource_matches = _matches(statement.resources, resource, ignore_case=False)
        if statement.not_actions:
            action_matches = not action_matches
        if statement.not_resources:
            resource_matches = not resource_matches
        if action_matches and resource_matches:
            if statement.effect == "Deny":
                return False
            allowed = True
    return allowed


# --- the roles ------------------------------------------------------------------------------


@cache
def _translated() -> dict[str, Any]:
    return translate_offline(load_template())


def _substitute(value: Any, names: Mapping[str, Mapping[str, str]]) -> str:
    """A policy's Ref / GetAtt / Sub resolved with a stack's names (`stack_names`)."""
    if isinstance(value, str):
        return value
    ((function, argument),) = value.items()
    if function == "Ref":
        return names["Ref"][argument]
    if function == "Fn::GetAtt":
        logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
        return names[attribute][logical_id]
    if function == "Fn::Sub":
        text, variables = (argument, {}) if isinstance(argument, str) else argument

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return _substitute(variables[name], names)
            if "." in name:
                logical_id, attribute = name.split(".", 1)
                return names[attribute][logical_id]
            return names["Ref"][name]

        return re.sub(r"\$\{([^}]+)\}", one, text)
    raise AssertionError(f"cannot resolve {value!r} in a role's policy")


def _statements(node: Any, names: Mapping[str, Mapping[str, str]]) -> list[Statement]:
    statements = node if isinstance(node, list) else [node]
    resolved = []
    for statement in statements:
        assert "Condition" not in statement, f"a condition this check cannot weigh: {statement}"
        action_key = "NotAction" if "NotAction" in statement else "Action"
        resource_key = "NotResource" if "NotResource" in statement else "Resource"
        resolved.append(
            Statement(
                effect=statement["Effect"],
                actions=tuple(as_list(statement[action_key])),
                resources=tuple(_substitute(r, names) for r in as_list(statement[resource_key])),
                not_actions=action_key == "NotAction",
                not_resources=resource_key == "NotResource",
            )
        )
    return resolved


def role_statements(function: str, names: Mapping[str, Mapping[str, str]]) -> list[Statement]:
    """Everything the function's role allows (inline, attached and managed policies), with the
    stack's names."""
    cfn = _translated()
    role_ref = cfn["Resources"][function]["Properties"]["Role"]
    role_id = role_ref["Fn::GetAtt"][0]
    role = cfn["Resources"][role_id]["Properties"]
    documents = [policy["PolicyDocument"] for policy in role.get("Policies", [])]
    for policy in resources_of_type(cfn, "AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"].get("Roles", []):
            documents.append(policy["Properties"]["PolicyDocument"])
    statements = [s for d in documents for s in _statements(d["Statement"], names)]
    for arn in role.get("ManagedPolicyArns", []):
        name = _substitute(arn, names).rsplit("/", 1)[-1]
        assert name in MANAGED_POLICIES, f"managed policy {name}: add its actions here"
        statements.append(Statement("Allow", tuple(MANAGED_POLICIES[name]), ("*",)))
    return statements


# --- the calls' requests ----------------------------------------------------------------------


def _object_arn(bucket: str, key: str) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


def _table_arn(table: str) -> str:
    if table.startswith("arn:"):
        return table
    return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}"


def _queue_arn(url_or_name: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{url_or_name.rstrip('/').rsplit('/', 1)[-1]}"


def _bus_arn(bus: str) -> str:
    return bus if bus.startswith("arn:") else f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{bus}"


def _secret_arn(secret: str, names: Mapping[str, Mapping[str, str]]) -> str:
    if secret.startswith("arn:"):
        return secret
    for ref in names["Ref"].values():  # a name: the stack's secret of that name
        if ref.startswith("arn:aws:secretsmanager:") and ref.split(":secret:", 1)[1] == secret:
            return ref
    return f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{secret}"


def iam_requests(call: AwsCall, names: Mapping[str, Mapping[str, str]]) -> list[Request]:
    """What IAM authorizes for this call: (action, resource) pairs. An operation this does not
    know asks for its action on "*", which only a Resource "*" grant allows: a new kind of
    call is either granted broadly or taught here, never passed silently."""
    service, params = call.service, call.params
    action = f"{service}:{ACTION_OF_OPERATION.get((service, call.operation), call.operation)}"
    if service == "s3":
        if call.operation == "CopyObject":
            source = params["CopySource"]
            if isinstance(source, str):
                bucket, _, key = unquote(source.lstrip("/")).partition("/")
            else:
                bucket, key = source["Bucket"], source["Key"]
            target = _object_arn(params["Bucket"], params["Key"])
            return [("s3:GetObject", _object_arn(bucket, key)), ("s3:PutObject", target)]
        if "Key" in params:
            return [(action, _object_arn(params["Bucket"], params["Key"]))]
        if "Bucket" in params:
            return [(action, f"arn:aws:s3:::{params['Bucket']}")]
    if service == "dynamodb" and "TableName" in params:
        table = _table_arn(params["TableName"])
        if "IndexName" in params:
            return [(action, f"{table}/index/{params['IndexName']}")]
        return [(action, table)]
    if service == "sqs" and ("QueueUrl" in params or "QueueName" in params):
        return [(action, _queue_arn(params.get("QueueUrl") or params["QueueName"]))]
    if service == "events" and call.operation == "PutEvents":
        return [(action, _bus_arn(bus)) for bus in sorted(set(params["EventBusNames"]))]
    if service == "states":
        if call.operation in ("SendTaskSuccess", "SendTaskFailure", "SendTaskHeartbeat"):
            return [(action, "*")]  # task tokens have no resource-level permissions
        arn = params.get("stateMachineArn") or params.get("executionArn")
        if arn:
            return [(action, arn)]
    if service == "secretsmanager" and "SecretId" in params:
        return [(action, _secret_arn(params["SecretId"], names))]
    if service == "lambda" and "FunctionName" in params:
        name = params["FunctionName"]
        if not name.startswith("arn:"):
            name = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
        return [(action, name)]
    return [(action, "*")]


def logical_resource(resource: str, names: Mapping[str, Mapping[str, str]]) -> str | None:
    """A resource ARN with the stack's names back to the template's (`<ImagesBucket>/*`,
    `<JobsTable>/index/ByCacheKey`, `<ImageJobStateMachine.Name> execution`): object keys and
    execution names cut, for a summary stable across stacks. None for a resource that is not
    the stack's (a test's own, to stage a fault) and "*" as it is."""
    if resource == "*":
        return resource
    for logical_id, name in names["Name"].items():
        if f":execution:{name}:" in resource:
            return f"<{logical_id}.Name> execution"
    best, found = "", ""
    for logical_id, arn in [*names["Arn"].items(), *names["Ref"].items()]:
        if arn.startswith("arn:") and resource.startswith(arn) and len(arn) > len(best):
            best, found = arn, logical_id
    rest = resource[len(best) :]
    if not best or rest[:1] not in ("", "/"):
        return None
    if rest.startswith("/index/"):
        return f"<{found}>{rest}"
    return f"<{found}>" + ("/*" if rest else "")


# --- the proof ------------------------------------------------------------------------------


@dataclass
class Proof:
    """What the recorded calls showed: the requests no role grants, and every function's
    distinct (action, logical resource) pairs."""

    violations: list[str]
    distinct: dict[str, set[tuple[str, str]]]
    calls: Counter[str]
    # Requests on resources that are not the stack's: a test pointed the function elsewhere
    # (a missing table, another secret) to stage a fault; no deployed role is asked for them.
    foreign: Counter[str]

    def report(self) -> dict[str, Any]:
        """What a summary needs, as JSON (an xdist worker sends it to the controller)."""
        return {
            "distinct": {function: sorted(pairs) for function, pairs in self.distinct.items()},
            "calls": dict(self.calls),
            "foreign": dict(self.foreign),
        }


def prove(sinks: Iterable[CallSink]) -> Proof:
    violations: set[str] = set()
    distinct: dict[str, set[tuple[str, str]]] = defaultdict(set)
    calls: Counter[str] = Counter()
    foreign: Counter[str] = Counter()
    roles: dict[tuple[str, str], list[Statement]] = {}
    for sink in sinks:
        for call in sink.calls:
            names = sink.stacks[call.stack]
            key = (call.stack, call.function)
            if key not in roles:
                roles[key] = role_statements(call.function, names)
            calls[call.function] += 1
            for action, resource in iam_requests(call, names):
                logical = logical_resource(resource, names)
                if logical is None:
                    foreign[call.function] += 1
                    continue
                distinct[call.function].add((action, logical))
                if not allows(roles[key], action, resource):
                    how = " (a presigned URL)" if call.presigned else ""
                    violations.add(
                        f"{call.function} calls {action} on {resource}{how} [{logical}]:"
                        " its role does not grant it"
                    )
    return Proof(sorted(violations), dict(distinct), calls, foreign)


def summary_lines(reports: Iterable[Mapping[str, Any]], *, verbose: bool) -> list[str]:
    """Several sessions' or processes' reports as one summary: per function, its distinct
    (action, resource) pairs and how many calls it made."""
    distinct: dict[str, set[tuple[str, str]]] = defaultdict(set)
    calls: Counter[str] = Counter()
    foreign: Counter[str] = Counter()
    for report in reports:
        for function, pairs in report["distinct"].items():
            distinct[function] |= {(str(action), str(resource)) for action, resource in pairs}
        calls.update(report["calls"])
        foreign.update(report["foreign"])
    lines = []
    for function in sorted(distinct):
        staged = f", {foreign[function]} on a test's own resources" if foreign[function] else ""
        lines.append(
            f"{function}: {len(distinct[function])} distinct calls ({calls[function]} made{staged})"
        )
        if verbose:
            lines.extend(
                f"    {action} {resource}" for action, resource in sorted(distinct[function])
            )
    return lines
