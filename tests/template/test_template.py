"""The SAM template and the ASL it deploys: lint-clean, translatable offline, coherent.

These tests read files only: no network, no AWS account, no Docker.
"""

from __future__ import annotations

import ast
import copy
import inspect
import json
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import pytest_socket
import yaml
from cfnlint.api import lint, lint_file
from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import intrinsics_multi_constructor

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
ASL = ROOT / "statemachine" / "image_job.asl.json"
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
CHECKOV_CONFIG = ROOT / ".checkov.yaml"
MAKEFILE = ROOT / "Makefile"

STATE_MACHINE_ID = "ImageJobStateMachine"
LAMBDA_SERVICE_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}
# Names the handlers and the layer are written against (see DESIGN.md / the brief).
CONTRACT_RESOURCES = {
    "CommonLayer": "AWS::Serverless::LayerVersion",
    "HttpApi": "AWS::Serverless::HttpApi",
    "SubmitFunction": "AWS::Serverless::Function",
    "JobStatusFunction": "AWS::Serverless::Function",
    "SubmitUpstreamFunction": "AWS::Serverless::Function",
    "CheckUpstreamFunction": "AWS::Serverless::Function",
    "StoreImagesFunction": "AWS::Serverless::Function",
    "RecordFailureFunction": "AWS::Serverless::Function",
    "ReconcilerFunction": "AWS::Serverless::Function",
    "IntakeFunction": "AWS::Serverless::Function",
    "DeliverWebhookFunction": "AWS::Serverless::Function",
    "AuthorizerFunction": "AWS::Serverless::Function",
    "KeyedHttpApi": "AWS::Serverless::HttpApi",
    "ApiKeysTable": "AWS::DynamoDB::Table",
    "EventBus": "AWS::Events::EventBus",
    "ImageRequestedRule": "AWS::Events::Rule",
    "RequestQueue": "AWS::SQS::Queue",
    "RequestDeadLetterQueue": "AWS::SQS::Queue",
    "WebhookQueue": "AWS::SQS::Queue",
    "WebhookDeadLetterQueue": "AWS::SQS::Queue",
    "WebhookSigningSecret": "AWS::SecretsManager::Secret",
    "ImageJobStateMachine": "AWS::Serverless::StateMachine",
    "JobsTable": "AWS::DynamoDB::Table",
    "IdempotencyTable": "AWS::DynamoDB::Table",
    "ImagesBucket": "AWS::S3::Bucket",
    "ImagesBucketPolicy": "AWS::S3::BucketPolicy",
    "UpstreamApiKeySecret": "AWS::SecretsManager::Secret",
}
CONTRACT_ENV = {
    "JOBS_TABLE_NAME",
    "IMAGES_BUCKET_NAME",
    "UPSTREAM_BASE_URL",
    "UPSTREAM_API_KEY_SECRET_NAME",
    "JOB_DEADLINE_SECONDS",
    "PRESIGNED_URL_TTL_SECONDS",
    "JOB_RETENTION_DAYS",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
}
PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")

BASIC_EXECUTION = "managed:AWSLambdaBasicExecutionRole"
XRAY_WRITE = "managed:AWSXrayWriteOnlyAccess"
# What SAM attaches to a function with an SQS event source (to poll the queue): its managed
# policy, not a statement on the queue (SAM's choice; the function's own actions stay scoped).
SQS_POLLER = ("managed:AWSLambdaSQSQueueExecutionRole", "")


# What a function that tells callers a job ended may do: answer a waiting task (its token is
# the caller's, from any state machine: Step Functions' task-token actions take Resource "*"),
# and queue a webhook.
TELL_CALLERS = {
    ("states:SendTaskSuccess", "*"),
    ("states:SendTaskFailure", "*"),
    ("sqs:SendMessage", "<WebhookQueue.Arn>"),
}
# Every IAM role of the deployed stack, and exactly what it may do to what: (action, resource)
# with intrinsics rendered as <LogicalId> / <LogicalId.Attribute> / <AWS::Pseudo>. Managed
# policies appear as (managed:<name>, ""). A change here is a deliberate change of privilege.
ROLE_PERMISSIONS: dict[str, set[tuple[str, str]]] = {
    # submit_job: the key's presence (503 without it), the job row (JobStore.create, a
    # conditional PutItem), the named execution; Powertools Idempotency on its own table.
    "SubmitFunctionRole": {
        # the result cache: find, copy, and tell (a served job ends at once)
        ("dynamodb:Query", "<JobsTable.Arn>/index/ByCacheKey"),
        ("s3:GetObject", "<ImagesBucket.Arn>/jobs/*"),
        ("s3:PutObject", "<ImagesBucket.Arn>/jobs/*"),
        ("events:PutEvents", "<EventBus.Arn>"),
        ("states:SendTaskSuccess", "*"),
        ("states:SendTaskFailure", "*"),
        ("sqs:SendMessage", "<WebhookQueue.Arn>"),
        # imagegateway.adapters.usage_store: the caller's daily count (and ledger, give-backs)
        ("dynamodb:GetItem", "<UsageTable.Arn>"),
        ("dynamodb:UpdateItem", "<UsageTable.Arn>"),
        ("dynamodb:PutItem", "<JobsTable.Arn>"),
        ("dynamodb:GetItem", "<JobsTable.Arn>"),  # Prefer: wait=N
        ("s3:GetObject", "<ImagesBucket.Arn>/*"),  # a finished job's presigned URLs
        ("dynamodb:GetItem", "<IdempotencyTable.Arn>"),
        ("dynamodb:PutItem", "<IdempotencyTable.Arn>"),
        ("dynamodb:UpdateItem", "<IdempotencyTable.Arn>"),
        ("dynamodb:DeleteItem", "<IdempotencyTable.Arn>"),
        ("states:StartExecution", "<ImageJobStateMachine>"),
        ("secretsmanager:GetSecretValue", "<UpstreamApiKeySecret>"),
        (BASIC_EXECUTION, ""),
        (XRAY_WRITE, ""),
    },
    # submit_upstream: the row (verified_record's GetItem), its claim / release / upstream id
    # (UpdateItem), the key for the POST. No StartExecution, no S3, no other table.
    "SubmitUpstreamFunctionRole": {
        # imagegateway.adapters.usage_store: the caller's daily count (and ledger, give-backs)
        ("dynamodb:PutItem", "<UsageTable.Arn>"),
        ("dynamodb:GetItem", "<JobsTable.Arn>"),
        ("dynamodb:UpdateItem", "<JobsTable.Arn>"),
        ("secretsmanager:GetSecretValue", "<UpstreamApiKeySecret>"),
        (BASIC_EXECUTION, ""),
        (XRAY_WRITE, ""),
    },
    # The caller's jobs: read (status, list), cancel (the row, the executions, the completion).
    "JobStatusFunctionRole": {
        # imagegateway.adapters.usage_store: the caller's daily count (and ledger, give-backs)
        ("dynamodb:GetItem", "<UsageTable.Arn>"),
        ("dynamodb:UpdateItem", "<UsageTable.Arn>"),
        ("dynamodb:GetItem", "<JobsTable.Arn>"),
        ("dynamodb:UpdateItem", "<JobsTable.Arn>"),
        ("dynamodb:Query", "<JobsTable.Arn>/index/OwnerByCreated"),
        ("s3:GetObject", "<ImagesBucket.Arn>/*"),
        (
            "states:StopExecution",
            "arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>"
            ":execution:<ImageJobStateMachine.Name>:*",
        ),
        ("events:PutEvents", "<EventBus.Arn>"),
        (BASIC_EXECUTION, ""),
        (XRAY_WRITE, ""),
        *TELL_CALLERS,
    },
    "CheckUpstreamFunctionRole": {
        ("dynamodb:GetItem", "<JobsTable.Arn>"),  # verified_record: the ticket is the gateway's
        ("secretsmanager:GetSecretValue", "<UpstreamApiKeySecret>"),
        (BASIC_EXECUTION, ""),
        (XRAY_WRITE, ""),
    },
    "StoreImagesFunctionRole": {
        ("s3:PutObject", "<ImagesBucket.Arn>/*"),
        ("s3:AbortMultipartUpload", "<ImagesBucket.Arn>/*"),
        ("s3:ListMultipartUploadParts", "<ImagesBucket.Arn>/*"),
        ("s3:GetObject", "<ImagesBucket.Arn>/*"),  # its completion's presigned URLs
        ("dynamodb:GetItem", "<JobsTable.Arn>"),
        ("dynamodb:UpdateItem", "<JobsTable.Arn>"),
        (BASIC_EXECUTION, ""),
        (XRAY_WRITE, ""),
        *TELL_CALLERS,
    },
    "RecordFailureFunctionRole": {
        # imagegateway.adapters.usage_store: the caller's daily count (and ledger, give-backs)
        ("dynamodb:UpdateItem", "<UsageTable.Arn>"),
        ("dynamodb:GetItem", "<JobsTable.Arn>"),
        ("dynamodb:UpdateItem", "<JobsTable.Arn>"),
        (BASIC_EXECUTION, ""),
        (XRAY_WRITE, ""),
        *TELL_CALLERS,
    },
    "ReconcilerFunctionRole": {
        # imagegateway.adapters.usage_store: the caller's daily count (and ledger, give-backs)
        ("dynamodb:UpdateItem", "<UsageTable.Arn>"),
        ("dynamodb:Query", "<JobsTable.Arn>/index/PendingByDeadline"),
        ("dynamodb:GetItem", "<JobsTable.Arn>"),
        ("dynamodb:UpdateItem", "<JobsTable.Arn>"),
        (
            "states:DescribeExecution",
            "arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>"
            ":execution:<ImageJobStateMachine.Name>:*",
        ),
        ("states:StartExecution", "<ImageJobStateMachine>"),
        ("secretsmanager:GetSecretValue", "<UpstreamApiKeySecret>"),
        ("sqs:SendMessage", "<ReconcilerFailureQueue.Arn>"),  # its on-failure destination
        ("events:PutEvents", "<EventBus.Arn>"),  # the completion of a job it ends
        (BASIC_EXECUTION, ""),
        (XRAY_WRITE, ""),
        *TELL_CALLERS,
    },
    # The request queue's consumer: the job row, Idempotency records, the upstream POST (the
    # key), the execution, the message's next delivery, and the refusal of a request.
    "IntakeFunctionRole": {
        # the result cache: find, copy, and tell (a served job ends at once)
        ("dynamodb:Query", "<JobsTable.Arn>/index/ByCacheKey"),
        ("s3:GetObject", "<ImagesBucket.Arn>/jobs/*"),
        ("s3:PutObject", "<ImagesBucket.Arn>/jobs/*"),
        # imagegateway.adapters.usage_store: the caller's daily count (and ledger, give-backs)
        ("dynamodb:GetItem", "<UsageTable.Arn>"),
        ("dynamodb:UpdateItem", "<UsageTable.Arn>"),
        ("dynamodb:PutItem", "<UsageTable.Arn>"),
        ("dynamodb:PutItem", "<JobsTable.Arn>"),
        ("dynamodb:GetItem", "<JobsTable.Arn>"),
        ("dynamodb:UpdateItem", "<JobsTable.Arn>"),
        ("dynamodb:GetItem", "<IdempotencyTable.Arn>"),
        ("dynamodb:PutItem", "<IdempotencyTable.Arn>"),
        ("dynamodb:UpdateItem", "<IdempotencyTable.Arn>"),
        ("dynamodb:DeleteItem", "<IdempotencyTable.Arn>"),
        ("states:StartExecution", "<ImageJobStateMachine>"),
        (
            "states:DescribeExecution",
            "arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>"
            ":execution:<ImageJobStateMachine.Name>:*",
        ),
        ("sqs:ChangeMessageVisibility", "<RequestQueue.Arn>"),
        ("sqs:GetQueueUrl", "<RequestQueue.Arn>"),
        ("events:PutEvents", "<EventBus.Arn>"),
        ("secretsmanager:GetSecretValue", "<UpstreamApiKeySecret>"),
        SQS_POLLER,
        (BASIC_EXECUTION, ""),
        (XRAY_WRITE, ""),
        *TELL_CALLERS,
    },
    # The keyed API's authorizer: one read of a key's hash.
    "AuthorizerFunctionRole": {
        ("dynamodb:GetItem", "<ApiKeysTable.Arn>"),
        (BASIC_EXECUTION, ""),
        (XRAY_WRITE, ""),
    },
    "DeliverWebhookFunctionRole": {
        ("secretsmanager:GetSecretValue", "<WebhookSigningSecret>"),
        ("sqs:ChangeMessageVisibility", "<WebhookQueue.Arn>"),
        ("sqs:GetQueueUrl", "<WebhookQueue.Arn>"),
        SQS_POLLER,
        (BASIC_EXECUTION, ""),
        (XRAY_WRITE, ""),
    },
    # EventBridge Scheduler's role for the reconciler's schedule (and its dead-letter queue).
    "ReconcilerFunctionReconcileRole": {
        ("lambda:InvokeFunction", "<ReconcilerFunction.Arn>"),
        ("sqs:SendMessage", "<ReconcilerFailureQueue.Arn>"),
    },
    "ImageJobStateMachineRole": {
        ("lambda:InvokeFunction", "<SubmitUpstreamFunction.Arn>"),
        ("lambda:InvokeFunction", "<CheckUpstreamFunction.Arn>"),
        ("lambda:InvokeFunction", "<StoreImagesFunction.Arn>"),
        ("lambda:InvokeFunction", "<RecordFailureFunction.Arn>"),
        ("events:PutEvents", "<EventBus.Arn>"),  # PublishCompletion
        # HandOver (Express): the machine starts its own next execution, by its given name.
        (
            "states:StartExecution",
            "arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:stateMachine:"
            "<AWS::StackName>-image-job-<WorkflowType>",
        ),
        # CloudWatch Logs delivery has no resource-level permissions (AWS documents "*").
        ("logs:CreateLogDelivery", "*"),
        ("logs:GetLogDelivery", "*"),
        ("logs:UpdateLogDelivery", "*"),
        ("logs:DeleteLogDelivery", "*"),
        ("logs:ListLogDeliveries", "*"),
        ("logs:PutResourcePolicy", "*"),
        ("logs:DescribeResourcePolicies", "*"),
        ("logs:DescribeLogGroups", "*"),
        (XRAY_WRITE, ""),
    },
}
# Functions whose every Lambda error is unexpected, so one error raises an alarm.
ERROR_ALARMED_FUNCTIONS = {
    "SubmitFunction",
    "JobStatusFunction",
    "RecordFailureFunction",
    "ReconcilerFunction",
    # Queue consumers report what failed as batch item failures; an error is a crash.
    "IntakeFunction",
    "DeliverWebhookFunction",
    # A refused key is an answer, not an error: an error locks keyed callers out.
    "AuthorizerFunction",
}
# The workflow's task functions raise on purpose (their error names drive the ASL's Retry and
# Catch), so single errors are expected: WorkflowStepErrorsAlarm watches a stream of them, and
# an execution that fails for good raises StateMachineFailedAlarm.
WORKFLOW_STEP_FUNCTIONS = {
    "SubmitUpstreamFunction",
    "CheckUpstreamFunction",
    "StoreImagesFunction",
}
# The operational alarms: the (namespace, metric name, dimension name) each watches, the
# dimension values (several: a metric-math sum, one metric each), and its trigger.
OPERATIONAL_ALARMS: dict[str, dict[str, Any]] = {
    "SubmitThrottlesAlarm": {
        "metric": ("AWS/Lambda", "Throttles", "FunctionName"),
        "values": {"<SubmitFunction>", "<SubmitUpstreamFunction>"},
        "trigger": ("GreaterThanThreshold", 0),  # one throttle is enough
    },
    "Api5xxAlarm": {
        "metric": ("AWS/ApiGateway", "5xx", "ApiId"),
        "values": {"<HttpApi>"},
        "trigger": ("GreaterThanOrEqualToThreshold", 5),
    },
    "UpstreamSubmitErrorsAlarm": {
        # The custom metric submit_upstream emits (Powertools: namespace and `service`
        # dimension from the POWERTOOLS_* variables); checked against both below.
        "metric": ("ImagepipelineGateway", "UpstreamSubmitErrors", "service"),
        "values": {"imagepipeline-gateway"},
        "trigger": ("GreaterThanThreshold", 0),
    },
    "WorkflowNotStartedAlarm": {
        # A submit whose execution Step Functions refused (start_job emits it): on a first
        # deploy, a role without states:StartExecution makes every job fail this way.
        "metric": ("ImagepipelineGateway", "JobsNotStarted", "service"),
        "values": {"imagepipeline-gateway"},
        "trigger": ("GreaterThanThreshold", 0),
    },
    "WorkflowStepErrorsAlarm": {
        "metric": ("AWS/Lambda", "Errors", "FunctionName"),
        "values": {f"<{name}>" for name in WORKFLOW_STEP_FUNCTIONS},
        "trigger": ("GreaterThanOrEqualToThreshold", 10),
    },
}
# Lambda keeps this much of an account's concurrency unreserved: a reservation of N needs a
# quota of N + 100, and new accounts often have a quota of 10 (where any reservation fails).
LAMBDA_UNRESERVED_MINIMUM = 100
NEW_ACCOUNT_CONCURRENCY_QUOTA = 10


# ---------------------------------------------------------------- helpers


class _CfnLoader(yaml.SafeLoader):
    """A SafeLoader that reads CloudFormation short-form tags (!Ref, !GetAtt, ...)."""


_CfnLoader.add_multi_constructor("!", intrinsics_multi_constructor)


def load_template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506


def load_asl() -> dict[str, Any]:
    return json.loads(ASL.read_text(encoding="utf-8"))


def resources_of_type(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


def errors_and_warnings(matches: list[Any]) -> list[str]:
    return [str(m) for m in matches if m.rule.id[0] in "EW"]


def iter_scopes(machine: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield every state-machine scope (top level, Parallel branches, Map processors)."""
    yield path or "<top>", machine
    for name, state in machine.get("States", {}).items():
        for i, branch in enumerate(state.get("Branches", [])):
            yield from iter_scopes(branch, f"{path}/{name}/Branches/{i}")
        for key in ("ItemProcessor", "Iterator"):
            if isinstance(state.get(key), dict):
                yield from iter_scopes(state[key], f"{path}/{name}/{key}")


def iter_states(machine: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for scope, sub in iter_scopes(machine):
        for name, state in sub.get("States", {}).items():
            yield f"{scope}/{name}", state


def transitions(state: dict[str, Any]) -> list[str]:
    targets = [state[k] for k in ("Next", "Default") if k in state]
    targets += [rule["Next"] for rule in state.get("Choices", []) if "Next" in rule]
    targets += [catcher["Next"] for catcher in state.get("Catch", []) if "Next" in catcher]
    return targets


def iter_statements(node: Any) -> Iterator[dict[str, Any]]:
    """Every IAM-style policy statement anywhere under node (roles, policies, bucket policies)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Statement":
                statements = value if isinstance(value, list) else [value]
                yield from (s for s in statements if isinstance(s, dict))
            else:
                yield from iter_statements(value)
    elif isinstance(node, list):
        for item in node:
            yield from iter_statements(item)


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def render(value: Any) -> str:
    """An IAM resource as readable text: intrinsics become <LogicalId> / <LogicalId.Attr>."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Ref":
            return f"<{argument}>"
        if function == "Fn::GetAtt":
            parts = argument if isinstance(argument, list) else argument.split(".", 1)
            return f"<{'.'.join(parts)}>"
        if function == "Fn::Sub":
            text, variables = (argument, {}) if isinstance(argument, str) else argument
            return PLACEHOLDER.sub(
                lambda m: (
                    render(variables[m.group(1)]) if m.group(1) in variables else f"<{m.group(1)}>"
                ),
                text,
            )
    raise AssertionError(f"cannot render {value!r}")


def role_permissions(cfn: dict[str, Any], role_id: str) -> set[tuple[str, str]]:
    """(action, rendered resource) for every Allow a role has, inline or attached."""
    role = cfn["Resources"][role_id]["Properties"]
    documents = [policy["PolicyDocument"] for policy in role.get("Policies", [])]
    for policy in resources_of_type(cfn, "AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"].get("Roles", []):
            documents.append(policy["Properties"]["PolicyDocument"])
    granted = {
        (f"managed:{render(arn).rsplit('/', 1)[-1]}", "")
        for arn in role.get("ManagedPolicyArns", [])
    }
    for statement in iter_statements(documents):
        assert statement.get("Effect") == "Allow", statement
        assert "NotAction" not in statement, statement
        assert "NotResource" not in statement, statement
        granted |= {
            (action, render(resource))
            for action in as_list(statement["Action"])
            for resource in as_list(statement["Resource"])
        }
    return granted


def checkov_skips() -> list[tuple[str, str]]:
    """(check id, the comment line above it) for every skip-check entry in .checkov.yaml."""
    lines = CHECKOV_CONFIG.read_text(encoding="utf-8").splitlines()
    skips = []
    for number, line in enumerate(lines):
        entry = re.fullmatch(r"\s*-\s*(CKV\w+)\s*(#.*)?", line)
        if entry:
            above = lines[number - 1].strip() if number else ""
            skips.append((entry.group(1), above.removeprefix("#").strip()))
    return skips


def _local_path_to_s3(uri: str) -> str:
    return f"s3://artifacts-bucket/{uri.strip('/').replace('/', '-')}.zip"


def prepare_for_offline_transform(template: dict[str, Any]) -> dict[str, Any]:
    """What `sam package` would do: code to S3 URIs; the ASL inlined so it can be checked."""
    prepared = copy.deepcopy(template)
    for resource in prepared["Resources"].values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            props["CodeUri"] = _local_path_to_s3(props["CodeUri"])
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            props["ContentUri"] = _local_path_to_s3(props["ContentUri"])
        elif resource["Type"] == "AWS::Serverless::StateMachine":
            uri = props.pop("DefinitionUri")
            props["Definition"] = json.loads((ROOT / uri).read_text(encoding="utf-8"))
    return prepared


def flatten_definition_strings(cfn: dict[str, Any]) -> None:
    """SAM emits DefinitionString as a readable Fn::Join of lines; cfn-lint skips intrinsics.

    Joining it back into a plain JSON string lets cfn-lint's E3601 schema-check the ASL.
    """
    for resource in resources_of_type(cfn, "AWS::StepFunctions::StateMachine").values():
        definition = resource["Properties"]["DefinitionString"]
        if isinstance(definition, dict) and "Fn::Join" in definition:
            separator, parts = definition["Fn::Join"]
            assert all(isinstance(p, str) for p in parts), "unexpected intrinsic in the ASL"
            resource["Properties"]["DefinitionString"] = separator.join(parts)


class _NoValue:
    """AWS::NoValue: the property it is given to is removed."""


NO_VALUE = _NoValue()


def resolve(node: Any, template: dict[str, Any], **overrides: str) -> Any:
    """node as CloudFormation would deploy it with these parameter values (the defaults
    otherwise): Fn::If / Fn::Equals / Fn::Not / Fn::And / Fn::Or and Condition evaluated,
    parameters substituted, AWS::NoValue removed. Resource refs and other intrinsics stay."""
    unknown = overrides.keys() - template["Parameters"].keys()
    assert not unknown, f"no such parameter: {unknown}"
    # CloudFormation hands every parameter value over as a string.
    parameters = {
        name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()
    } | overrides

    def condition(name: str) -> bool:
        value = walk(template["Conditions"][name])
        assert isinstance(value, bool), (name, value)
        return value

    def walk(value: Any) -> Any:
        if isinstance(value, list):
            return [item for item in map(walk, value) if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((function, argument),) = value.items()
            if function == "Ref" and argument == "AWS::NoValue":
                return NO_VALUE
            if function == "Ref" and argument in parameters:
                return parameters[argument]
            if function == "Condition":
                return condition(argument)
            if function == "Fn::If":
                name, if_true, if_false = argument
                return walk(if_true if condition(name) else if_false)
            if function == "Fn::Equals":
                left, right = (walk(item) for item in argument)
                return str(left) == str(right)
            if function == "Fn::Not":
                (operand,) = argument
                return not walk(operand)
            if function == "Fn::And":
                return all(walk(item) for item in argument)
            if function == "Fn::Or":
                return any(walk(item) for item in argument)
        walked = {key: walk(item) for key, item in value.items()}
        return {key: item for key, item in walked.items() if item is not NO_VALUE}

    return walk(node)


def reserved_concurrency(cfn: dict[str, Any], **overrides: str) -> dict[str, int]:
    """Every translated function that reserves concurrency, with how much, for these values."""
    reserved = {}
    for name, function in resources_of_type(cfn, "AWS::Lambda::Function").items():
        props = resolve(function["Properties"], cfn, **overrides)
        if "ReservedConcurrentExecutions" in props:
            reserved[name] = int(props["ReservedConcurrentExecutions"])
    return reserved


def alarm_metrics(alarm: dict[str, Any]) -> set[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """(namespace, metric name, dimensions) of every metric an alarm evaluates: its single
    metric, or every metric its math expression sums (each summed exactly once, as a Sum)."""
    if "Metrics" not in alarm:
        dimensions = tuple((d["Name"], render(d["Value"])) for d in alarm.get("Dimensions", []))
        return {(alarm["Namespace"], alarm["MetricName"], dimensions)}
    assert not {"Namespace", "MetricName", "Dimensions", "Statistic"} & alarm.keys(), alarm
    returned = [m for m in alarm["Metrics"] if m.get("ReturnData", True)]
    stats = {m["Id"]: m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert len(returned) == 1, "one expression decides the alarm"
    assert "MetricStat" not in returned[0]
    terms = re.fullmatch(r"\s*(\w+(?:\s*\+\s*\w+)*)\s*", returned[0]["Expression"])
    assert terms, f"not a plain sum: {returned[0]['Expression']!r}"
    summed = re.split(r"\s*\+\s*", terms.group(1))
    assert sorted(summed) == sorted(stats), "the sum must take every metric exactly once"
    assert len(stats) == len(alarm["Metrics"]) - 1, "no other expressions"
    found = set()
    for stat in stats.values():
        assert stat["Stat"] == "Sum", stat
        metric = stat["Metric"]
        dimensions = tuple((d["Name"], render(d["Value"])) for d in metric.get("Dimensions", []))
        found.add((metric["Namespace"], metric["MetricName"], dimensions))
    assert len({stat["Period"] for stat in stats.values()}) == 1, "one period for every term"
    return found


def function_of_task(state: dict[str, Any]) -> str | None:
    """The DefinitionSubstitutions key a lambda:invoke Task calls (CheckUpstreamFunctionArn)."""
    name = state.get("Parameters", {}).get("FunctionName", "")
    match = PLACEHOLDER.fullmatch(name)
    return match.group(1) if match else None


# ---------------------------------------------------------------- fixtures


@contextmanager
def sockets_blocked() -> Iterator[None]:
    pytest_socket.disable_socket(allow_unix_socket=True)
    try:
        yield
    finally:
        pytest_socket.enable_socket()


@pytest.fixture(autouse=True)
def no_network() -> Iterator[None]:
    # Function-scoped, so it starts after the suite-wide autouse fixtures (which may open
    # a local UDP socket for the X-Ray emitter); module fixtures block sockets themselves.
    with sockets_blocked():
        yield


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def asl() -> dict[str, Any]:
    return load_asl()


@pytest.fixture(scope="module")
def translated(template: dict[str, Any]) -> dict[str, Any]:
    """The template as CloudFormation would receive it, translated offline."""
    # The managed-policy loader would call IAM; no policy here is named, so an empty map.
    loader = mock.create_autospec(ManagedPolicyLoader, instance=True)
    loader.load.return_value = {}
    with sockets_blocked(), pytest.MonkeyPatch.context() as mp:
        # samtranslator reads the region from a boto3 session (no call is made).
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.delenv("AWS_PROFILE", raising=False)
        cfn = transform(prepare_for_offline_transform(template), {}, loader)
    flatten_definition_strings(cfn)
    return cfn


# ---------------------------------------------------------------- lint


def test_template_lints_clean() -> None:
    # Given the SAM template as written
    # When cfn-lint checks it (with its own SAM transform)
    matches = lint_file(TEMPLATE)
    # Then there is no error and no warning
    assert errors_and_warnings(matches) == []


def test_translated_template_lints_clean_including_the_asl(translated: dict[str, Any]) -> None:
    # Given the template translated offline, with the ASL inlined as a plain DefinitionString
    definition = translated["Resources"][STATE_MACHINE_ID]["Properties"]["DefinitionString"]
    assert isinstance(definition, str)
    # When cfn-lint checks the plain CloudFormation (E3601 schema-checks the ASL)
    matches = lint(json.dumps(translated))
    # Then there is no error and no warning
    assert errors_and_warnings(matches) == []


def test_the_asl_schema_check_really_runs(translated: dict[str, Any]) -> None:
    # Given the translated template with an invalid field slipped into one ASL state
    broken = copy.deepcopy(translated)
    props = broken["Resources"][STATE_MACHINE_ID]["Properties"]
    definition = json.loads(props["DefinitionString"])
    first_state = definition["StartAt"]
    definition["States"][first_state]["NotAnAslField"] = True
    props["DefinitionString"] = json.dumps(definition)
    # When cfn-lint checks it
    matches = lint(json.dumps(broken))
    # Then the ASL schema rule reports it (so the clean result above means something)
    assert any(m.rule.id == "E3601" and "NotAnAslField" in str(m) for m in matches)


# ---------------------------------------------------------------- contract


def test_contract_resources_exist_with_their_types(template: dict[str, Any]) -> None:
    # Given the logical ids the code and the other parts are written against
    # When the template's resources are listed
    actual = {k: template["Resources"].get(k, {}).get("Type") for k in CONTRACT_RESOURCES}
    # Then every one exists with the expected type
    assert actual == CONTRACT_RESOURCES


def test_every_function_gets_the_contract_environment(translated: dict[str, Any]) -> None:
    # Given the translated Lambda functions
    functions = resources_of_type(translated, "AWS::Lambda::Function")
    assert set(functions) == {
        name for name, type_ in CONTRACT_RESOURCES.items() if type_ == "AWS::Serverless::Function"
    }
    for name, function in functions.items():
        # When their environment variables are read
        variables = function["Properties"]["Environment"]["Variables"]
        # Then every contract variable is set, and the runtime is the arm64 python3.12 one
        assert variables.keys() >= CONTRACT_ENV, name
        assert function["Properties"]["Runtime"] == "python3.12", name
        assert function["Properties"]["Architectures"] == ["arm64"], name
        assert function["Properties"]["TracingConfig"] == {"Mode": "Active"}, name
    submit = functions["SubmitFunction"]["Properties"]["Environment"]["Variables"]
    assert submit["STATE_MACHINE_ARN"] == {"Ref": STATE_MACHINE_ID}
    assert submit["IDEMPOTENCY_TABLE_NAME"] == {"Ref": "IdempotencyTable"}
    reconciler = functions["ReconcilerFunction"]["Properties"]["Environment"]["Variables"]
    assert reconciler["STATE_MACHINE_ARN"] == {"Ref": STATE_MACHINE_ID}
    assert reconciler["RECONCILE_MARGIN_SECONDS"] == {"Ref": "ReconcileMarginSeconds"}
    # Only the entries (HTTP submit, the queue's intake), the reconciler and cancel touch
    # executions;
    # the workflow's own tasks (SubmitUpstream included) never need the machine's ARN.
    assert {n for n, f in functions.items() if "STATE_MACHINE_ARN" in json.dumps(f)} == {
        "SubmitFunction",
        "IntakeFunction",
        "ReconcilerFunction",
        "JobStatusFunction",  # cancel stops the job's executions
    }
    # Only the entries hold Idempotency-Key records.
    assert {n for n, f in functions.items() if "IDEMPOTENCY_TABLE_NAME" in json.dumps(f)} == {
        "SubmitFunction",
        "IntakeFunction",
    }


def test_no_output_invites_callers_to_start_executions(template: dict[str, Any]) -> None:
    # Given the stack's outputs, the state machine's among them
    outputs = template["Outputs"]
    machine = outputs["StateMachineArn"]
    assert machine["Value"] == {"Ref": STATE_MACHINE_ID}
    start = re.compile(r"start[\s_-]*(an\s+|the\s+)?execution", re.IGNORECASE)
    # When their descriptions are read
    # Then none invites StartExecution: jobs enter through the API only (the submit function
    # records the row a workflow's tasks verify), and the machine's says it is no entry point
    assert [name for name, output in outputs.items() if start.search(output["Description"])] == []
    assert re.search(r"\bnot an entry point\b", machine["Description"], re.IGNORECASE)


def test_every_function_code_dir_has_its_handler(template: dict[str, Any]) -> None:
    # Given every function in the template, with the global handler unless it sets its own
    default_handler = template["Globals"]["Function"]["Handler"]
    functions = resources_of_type(template, "AWS::Serverless::Function")
    assert functions
    missing = []
    for name, function in functions.items():
        props = function["Properties"]
        module, _, attribute = props.get("Handler", default_handler).rpartition(".")
        source = ROOT / props["CodeUri"] / f"{module.replace('.', '/')}.py"
        # When its handler file is parsed
        if not source.is_file():
            missing.append(f"{name}: {source.relative_to(ROOT)} missing")
            continue
        tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
        defined = {
            node.name
            for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        } | {
            target.id
            for node in tree.body
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        # Then it defines the handler at module level (a function, or one a factory made)
        if attribute not in defined:
            missing.append(f"{name}: {attribute} not defined in {source.relative_to(ROOT)}")
    assert missing == []


def test_the_layer_holds_the_shared_package(template: dict[str, Any]) -> None:
    # Given the layer's content directory
    content = ROOT / template["Resources"]["CommonLayer"]["Properties"]["ContentUri"]
    # When it is listed / Then it has the package and the requirements the build installs
    assert (content / "imagegateway" / "__init__.py").is_file()
    assert (content / "requirements.txt").is_file()


def routes_of(translated: dict[str, Any], api: str) -> dict[str, Any]:
    body = translated["Resources"][api]["Properties"]["Body"]
    return {
        f"{method.upper()} {path}": operation
        for path, operations in body["paths"].items()
        for method, operation in operations.items()
    }


def test_the_keyed_api_serves_the_same_routes_behind_the_api_key_authorizer(
    translated: dict[str, Any], template: dict[str, Any]
) -> None:
    # Given the two APIs
    iam, keyed = routes_of(translated, "HttpApi"), routes_of(translated, "KeyedHttpApi")
    # Then they serve the same routes, the keyed one through its Lambda authorizer (docs aside)
    assert set(keyed) == set(iam)
    for route, operation in keyed.items():
        expected = (
            [{"NONE": []}]
            if route.split()[1] in ("/openapi.json", "/swagger")
            else [{"ApiKeyAuthorizer": []}]
        )
        assert operation.get("security") == expected, route
    authorizer = template["Resources"]["KeyedHttpApi"]["Properties"]["Auth"]["Authorizers"][
        "ApiKeyAuthorizer"
    ]
    # And the authorizer reads the upstream's own header, with cached answers
    assert authorizer["Identity"]["Headers"] == ["API-Key"]
    assert 0 < authorizer["Identity"]["ReauthorizeEvery"] <= 300
    assert authorizer["FunctionArn"] == {"Fn::GetAtt": ["AuthorizerFunction", "Arn"]}


def test_every_route_requires_iam_auth(translated: dict[str, Any]) -> None:
    # Given the HTTP API's generated OpenAPI body
    body = translated["Resources"]["HttpApi"]["Properties"]["Body"]
    routes = {
        f"{method.upper()} {path}": operation
        for path, operations in body["paths"].items()
        for method, operation in operations.items()
    }
    # When the routes are listed
    # Then they are exactly the public ones, all IAM (SigV4) protected but the API's own
    # description (the OpenAPI document and its Swagger UI), which a browser must read
    assert set(routes) == {
        "POST /sd/text2image/v1",
        "POST /sd/image2image/v1",
        "POST /sd/inpainting/v1",
        "GET /sd/{kind}/v1/status/{job_id}",
        "GET /v1/jobs",
        "POST /v1/jobs/{job_id}/cancel",
        "GET /v1/usage",
        "GET /openapi.json",
        "GET /swagger",
    }
    documentation = {"GET /openapi.json", "GET /swagger"}
    for route, operation in routes.items():
        expected = [{"NONE": []}] if route in documentation else [{"AWS_IAM": []}]
        assert operation.get("security") == expected, route


def test_access_log_format_is_json_with_the_useful_fields(translated: dict[str, Any]) -> None:
    # Given the two HTTP API stages (IAM, keyed)
    stages = resources_of_type(translated, "AWS::ApiGatewayV2::Stage")
    assert len(stages) == 2
    for stage in stages.values():
        # When its access log format is parsed
        fields = json.loads(stage["Properties"]["AccessLogSettings"]["Format"])
        # Then it is JSON carrying what an operator needs to trace a request, and who made it
        assert {"requestId", "ip", "routeKey", "status", "integrationError"} <= fields.keys()
        assert {"caller", "owner"} & fields.keys()


def test_bucket_is_private_encrypted_and_tls_only(template: dict[str, Any]) -> None:
    # Given the images bucket and its policy
    bucket = template["Resources"]["ImagesBucket"]["Properties"]
    policy = template["Resources"]["ImagesBucketPolicy"]["Properties"]["PolicyDocument"]
    # When their settings are read / Then no public access, SSE, and plain HTTP is denied
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert any(
        s["Effect"] == "Deny"
        and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
        for s in policy["Statement"]
    )


def test_no_allow_statement_grants_a_wildcard_action(translated: dict[str, Any]) -> None:
    # Given every policy statement in the translated template
    statements = list(iter_statements(translated["Resources"]))
    assert statements
    # When the Allow statements' actions are inspected
    offending = [
        s
        for s in statements
        if s.get("Effect", "Allow") == "Allow"
        and (
            "NotAction" in s
            or any(
                isinstance(a, str) and (a == "*" or a.endswith(":*"))
                for a in as_list(s.get("Action", []))
            )
        )
    ]
    # Then none grants "*" or "service:*" (the TLS-only Deny on s3:* is the only wildcard)
    assert offending == []


# ---------------------------------------------------------------- the ASL


def test_machine_has_a_timeout_above_the_job_deadline(
    asl: dict[str, Any], template: dict[str, Any]
) -> None:
    # Given the state machine and the job deadline parameter
    max_deadline = int(template["Parameters"]["JobDeadlineSeconds"]["MaxValue"])
    # When the machine's own timeout is read
    timeout = asl.get("TimeoutSeconds")
    # Then it exists and leaves room for the deadline to be handled inside the workflow
    assert isinstance(timeout, int)
    assert timeout > max_deadline


def test_every_choice_state_has_a_default(asl: dict[str, Any]) -> None:
    # Given every Choice state
    choices = {name: s for name, s in iter_states(asl) if s["Type"] == "Choice"}
    assert choices
    # When their Default is looked for / Then each has one
    assert [name for name, s in choices.items() if "Default" not in s] == []


def test_every_task_retries_lambda_service_errors_and_catches(asl: dict[str, Any]) -> None:
    # Given every Task state
    tasks = {name: s for name, s in iter_states(asl) if s["Type"] == "Task"}
    assert tasks
    for name, task in tasks.items():
        # When its retriers (that retry at least once) are collected
        covered = {
            error
            for retrier in task.get("Retry", [])
            if retrier.get("MaxAttempts", 3) > 0
            for error in retrier["ErrorEquals"]
        }
        # Then Lambda's transient service errors are retried and every failure is caught
        assert "States.ALL" in covered or covered >= LAMBDA_SERVICE_ERRORS, name
        caught = {error for catcher in task.get("Catch", []) for error in catcher["ErrorEquals"]}
        assert "States.ALL" in caught, name


def test_submit_upstream_is_never_retried_after_an_upstream_error(asl: dict[str, Any]) -> None:
    # Given the task that POSTs upstream, and every error name a gateway error can carry
    # (the class names imagegateway.domain.errors raises, which a Retry would match)
    from imagegateway.domain import errors

    typed = {
        name
        for name, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.GatewayError)
    }
    assert {"UpstreamOutcomeUnknownError", "UpstreamTimeoutError"} <= typed
    tasks = {
        name: state
        for name, state in iter_states(asl)
        if state["Type"] == "Task" and function_of_task(state) == "SubmitUpstreamFunctionArn"
    }
    assert list(tasks) == ["<top>/SubmitUpstream"]
    assert asl["StartAt"] == "SubmitUpstream"  # the job goes upstream from the workflow
    (task,) = tasks.values()
    # When the errors its retriers match are collected
    retried = {error for retrier in task.get("Retry", []) for error in retrier["ErrorEquals"]}
    # Then none is an error raised after the POST may have been sent: no typed gateway error,
    # and no catch-all that would match one (Lambda's own errors and crashes only: a re-run
    # finds the claim on the job row and never POSTs again)
    assert retried & typed == set()
    assert retried & {"States.ALL", "States.TaskFailed"} == set()
    assert retried >= LAMBDA_SERVICE_ERRORS


def test_every_task_outlasts_its_function(asl: dict[str, Any], template: dict[str, Any]) -> None:
    # Given every Task, the function it invokes and that function's Lambda timeout
    substitutions = template["Resources"][STATE_MACHINE_ID]["Properties"]["DefinitionSubstitutions"]
    default_timeout = template["Globals"]["Function"]["Timeout"]
    tasks = {name: s for name, s in iter_states(asl) if s["Type"] == "Task"}
    assert tasks
    for name, task in tasks.items():
        key = function_of_task(task)
        if key is None:
            continue  # a service integration (PublishCompletion's putEvents), no function
        function = substitutions[key]["Fn::GetAtt"][0]
        props = template["Resources"][function]["Properties"]
        # When the task's own timeout is compared with the function's
        # Then Step Functions never gives up (and retries) while the invocation still runs:
        # a SubmitUpstream re-run must start only after the first run has ended
        assert task["TimeoutSeconds"] > props.get("Timeout", default_timeout), name


def test_placeholders_match_the_definition_substitutions(template: dict[str, Any]) -> None:
    # Given the raw ASL text and the template's substitutions
    placeholders = set(PLACEHOLDER.findall(ASL.read_text(encoding="utf-8")))
    props = template["Resources"][STATE_MACHINE_ID]["Properties"]
    substitutions = props["DefinitionSubstitutions"]
    # When they are compared / Then every placeholder is substituted and none is unused
    assert placeholders == set(substitutions)


def test_substituted_functions_are_invokable_by_the_machine(template: dict[str, Any]) -> None:
    # Given the substitutions and the state machine's policies
    props = template["Resources"][STATE_MACHINE_ID]["Properties"]
    functions = resources_of_type(template, "AWS::Serverless::Function")
    invokable = {
        resource["Fn::GetAtt"][0]
        for statement in iter_statements(props["Policies"])
        if "lambda:InvokeFunction" in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
    }
    for key, value in props["DefinitionSubstitutions"].items():
        if key == "EventBusName":  # the bus PublishCompletion puts events on
            assert value == {"Ref": "EventBus"}
            continue
        # When a substitution is resolved
        logical_id, attribute = value["Fn::GetAtt"]
        # Then it is a function's ARN, and the machine may invoke that function
        assert attribute == "Arn", key
        assert logical_id in functions, key
        assert logical_id in invokable, key


def test_transitions_are_valid_and_every_state_is_reachable(asl: dict[str, Any]) -> None:
    problems = []
    for scope, machine in iter_scopes(asl):
        # Given one scope's states
        states = machine["States"]
        assert machine["StartAt"] in states, scope
        # When every transition is followed from StartAt
        for name, state in states.items():
            problems += [
                f"{scope}/{name} -> {target}: no such state"
                for target in transitions(state)
                if target not in states
            ]
        seen, todo = set(), [machine["StartAt"]]
        while todo:
            name = todo.pop()
            if name in seen or name not in states:
                continue
            seen.add(name)
            todo += transitions(states[name])
        # Then every target exists and no state is orphaned
        problems += [f"{scope}/{name}: unreachable" for name in states.keys() - seen]
    assert problems == []


# ---------------------------------------------------------------- data the code relies on


def test_idempotency_table_matches_powertools_defaults(template: dict[str, Any]) -> None:
    # Given the idempotency table and the attribute names Powertools' DynamoDB layer defaults to
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(DynamoDBPersistenceLayer).parameters.items()
    }
    props = template["Resources"]["IdempotencyTable"]["Properties"]
    # When its key, TTL and protections are read
    # Then the hash key is `id` (a string), alone; `expiration` is the TTL attribute
    assert props["KeySchema"] == [{"AttributeName": defaults["key_attr"], "KeyType": "HASH"}]
    assert props["AttributeDefinitions"] == [
        {"AttributeName": defaults["key_attr"], "AttributeType": "S"}
    ]
    assert defaults["key_attr"] == "id"
    assert props["TimeToLiveSpecification"] == {
        "AttributeName": defaults["expiry_attr"],
        "Enabled": True,
    }
    assert defaults["expiry_attr"] == "expiration"
    # And it is on-demand, point-in-time recoverable and encrypted
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True


def test_jobs_table_has_the_sparse_pending_by_deadline_index(template: dict[str, Any]) -> None:
    # Given the jobs table and the names the jobs store queries with

    from imagegateway.adapters import job_store as jobs

    props = template["Resources"]["JobsTable"]["Properties"]
    indexes = {index["IndexName"]: index for index in props["GlobalSecondaryIndexes"]}
    attribute_types = {
        a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]
    }
    # When the index the reconciler queries is looked up
    index = indexes[jobs.PENDING_INDEX]
    # Then it is keyed by the pending mark, sorted by deadline, and projects whole rows
    assert jobs.PENDING_INDEX == "PendingByDeadline"
    assert index["KeySchema"] == [
        {"AttributeName": jobs.PENDING_ATTRIBUTE, "KeyType": "HASH"},
        {"AttributeName": "deadline_at", "KeyType": "RANGE"},
    ]
    assert index["Projection"] == {"ProjectionType": "ALL"}
    assert attribute_types == {
        "job_id": "S",
        jobs.PENDING_ATTRIBUTE: "S",
        "deadline_at": "S",
        "owner": "S",
        "created_at": "S",
        "cache_key": "S",
        "completed_at": "S",
    }
    # And it is sparse: `pending` is not the table's own key, so rows without it stay out
    assert jobs.PENDING_ATTRIBUTE not in {k["AttributeName"] for k in props["KeySchema"]}
    # And the list route's index holds a caller's jobs by creation time
    assert indexes[jobs.OWNER_INDEX]["KeySchema"] == [
        {"AttributeName": "owner", "KeyType": "HASH"},
        {"AttributeName": "created_at", "KeyType": "RANGE"},
    ]
    # And the result cache's index holds successful fixed-seed jobs by key, newest first
    assert indexes[jobs.CACHE_INDEX]["KeySchema"] == [
        {"AttributeName": "cache_key", "KeyType": "HASH"},
        {"AttributeName": "completed_at", "KeyType": "RANGE"},
    ]


def test_reconciler_runs_every_five_minutes(template: dict[str, Any]) -> None:
    # Given the reconciler function
    props = template["Resources"]["ReconcilerFunction"]["Properties"]
    schedules = [
        event["Properties"]
        for event in props["Events"].values()
        if event["Type"] in {"Schedule", "ScheduleV2"}
    ]
    # When its schedule and timeout are read
    # Then one schedule fires every 5 minutes, undeliverable runs go to the failure queue,
    # and a run ends before the next is due (overlaps come only from retries, and are
    # harmless: every write is conditional and executions are named; it reserves no
    # concurrency, see test_no_function_reserves_concurrency_by_default)
    assert len(schedules) == 1
    assert schedules[0]["ScheduleExpression"] == "rate(5 minutes)"
    assert schedules[0]["DeadLetterConfig"]["Arn"] == {
        "Fn::GetAtt": ["ReconcilerFailureQueue", "Arn"]
    }
    assert props["Timeout"] < 5 * 60
    assert props["Handler"] == "app.lambda_handler"
    assert props["CodeUri"].rstrip("/") == "functions/reconciler"
    margin = template["Parameters"]["ReconcileMarginSeconds"]
    assert (margin["Type"], margin["Default"]) == ("Number", 120)


def test_reconciler_failures_are_kept_encrypted_and_alarmed(template: dict[str, Any]) -> None:
    # Given the reconciler's async invocation settings and its failure queue
    resources = template["Resources"]
    invoke_config = resources["ReconcilerFunction"]["Properties"]["EventInvokeConfig"]
    on_failure = invoke_config["DestinationConfig"]["OnFailure"]
    queue = resources["ReconcilerFailureQueue"]
    # When they are read
    # Then failed runs land in an SQS queue that is encrypted and keeps them for days
    assert on_failure == {
        "Type": "SQS",
        "Destination": {"Fn::GetAtt": ["ReconcilerFailureQueue", "Arn"]},
    }
    assert queue["Type"] == "AWS::SQS::Queue"
    assert queue["Properties"].get("KmsMasterKeyId") or queue["Properties"].get(
        "SqsManagedSseEnabled"
    )
    assert queue["Properties"]["MessageRetentionPeriod"] >= 4 * 24 * 3600
    # And an alarm fires as soon as one message is waiting there
    depth_alarms = [
        alarm["Properties"]
        for alarm in resources_of_type(template, "AWS::CloudWatch::Alarm").values()
        if alarm["Properties"].get("Namespace") == "AWS/SQS"
        and alarm["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
        and alarm["Properties"]["Dimensions"]
        == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["ReconcilerFailureQueue", "QueueName"]}}]
    ]
    assert len(depth_alarms) == 1
    assert (depth_alarms[0]["ComparisonOperator"], depth_alarms[0]["Threshold"]) == (
        "GreaterThanThreshold",
        0,
    )


# ---------------------------------------------------------------- concurrency


def test_submit_concurrency_is_an_opt_in_cap_on_upstream_posts(template: dict[str, Any]) -> None:
    # Given the parameter that caps parallel upstream POSTs, its condition and the function
    # that makes the POSTs
    parameter = template["Parameters"]["SubmitConcurrency"]
    condition = template["Conditions"]["ReserveSubmitConcurrency"]
    props = template["Resources"]["SubmitUpstreamFunction"]["Properties"]
    # When they are read
    # Then the cap is a Number, 0 (no reservation) by default and allowed, documented with
    # the account quota it needs
    assert (parameter["Type"], parameter["Default"], parameter["MinValue"]) == ("Number", 0, 0)
    assert "quota" in parameter["Description"]
    # And a value other than 0 becomes SubmitUpstream's reservation; 0 removes the property
    assert condition == {"Fn::Not": [{"Fn::Equals": [{"Ref": "SubmitConcurrency"}, 0]}]}
    assert props["ReservedConcurrentExecutions"] == {
        "Fn::If": [
            "ReserveSubmitConcurrency",
            {"Ref": "SubmitConcurrency"},
            {"Ref": "AWS::NoValue"},
        ]
    }


def test_no_function_reserves_concurrency_by_default(translated: dict[str, Any]) -> None:
    # Given the stack as deployed with the default parameters (SubmitConcurrency 0), and
    # Lambda's rule that N reserved needs an account quota of at least N + 100
    # When every function's reserved concurrency is resolved
    by_default = reserved_concurrency(translated)
    explicit_zero = reserved_concurrency(translated, SubmitConcurrency="0")
    # Then none reserves any: a first deploy succeeds on a new account whose quota is 10
    assert by_default == {}
    assert explicit_zero == {}
    total = sum(by_default.values())
    assert total == 0 or total + LAMBDA_UNRESERVED_MINIMUM <= NEW_ACCOUNT_CONCURRENCY_QUOTA
    # And nothing else claims account concurrency either (no provisioned concurrency)
    assert "ProvisionedConcurrencyConfig" not in json.dumps(translated["Resources"])


def test_submit_concurrency_reserves_only_the_upstream_submits(translated: dict[str, Any]) -> None:
    # Given the stack deployed with SubmitConcurrency=5
    # When every function's reserved concurrency is resolved
    reserved = reserved_concurrency(translated, SubmitConcurrency="5")
    # Then only the function making the paid upstream POSTs reserves, exactly 5: the HTTP
    # submit function (which only records the job) and the reconciler stay unreserved
    assert reserved == {"SubmitUpstreamFunction": 5}


# ---------------------------------------------------------------- alarms


def _alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: alarm["Properties"]
        for name, alarm in resources_of_type(template, "AWS::CloudWatch::Alarm").items()
    }


def _single_metric_alarms(template: dict[str, Any]) -> list[dict[str, Any]]:
    """The alarms on one metric (metric-math alarms have no Namespace of their own)."""
    return [alarm for alarm in _alarms(template).values() if "Metrics" not in alarm]


def test_state_machine_failures_and_timeouts_raise_alarms(template: dict[str, Any]) -> None:
    # Given the alarms on the state machine's metrics
    watched = {
        alarm["MetricName"]
        for alarm in _single_metric_alarms(template)
        if alarm["Namespace"] == "AWS/States"
        and alarm["Dimensions"] == [{"Name": "StateMachineArn", "Value": {"Ref": STATE_MACHINE_ID}}]
        and alarm["ComparisonOperator"] == "GreaterThanThreshold"
        and alarm["Threshold"] == 0
    }
    # When they are listed / Then one failed or timed-out execution is enough
    assert watched >= {"ExecutionsFailed", "ExecutionsTimedOut"}


def test_unexpected_lambda_errors_raise_alarms(template: dict[str, Any]) -> None:
    # Given the alarms on one function's Lambda Errors metric
    watched = {
        alarm["Dimensions"][0]["Value"]["Ref"]
        for alarm in _single_metric_alarms(template)
        if alarm["Namespace"] == "AWS/Lambda"
        and alarm["MetricName"] == "Errors"
        and alarm["Dimensions"][0]["Name"] == "FunctionName"
        and alarm["ComparisonOperator"] == "GreaterThanThreshold"
        and alarm["Threshold"] == 0
    }
    # When they are listed / Then every function whose errors are never expected is watched,
    # and one error is enough
    assert watched == ERROR_ALARMED_FUNCTIONS


def test_every_function_has_its_errors_watched(template: dict[str, Any]) -> None:
    # Given every function, and every alarm on Lambda's Errors metric (single or summed)
    functions = set(resources_of_type(template, "AWS::Serverless::Function"))
    watched = {
        value.strip("<>")
        for alarm in _alarms(template).values()
        for namespace, metric, dimensions in alarm_metrics(alarm)
        if (namespace, metric) == ("AWS/Lambda", "Errors")
        for name, value in dimensions
        if name == "FunctionName"
    }
    # When they are compared / Then no function's errors go unseen, a new one included, and
    # the two kinds split them: one-error alarms, or the workflow steps' summed alarm
    assert watched == functions
    assert functions == ERROR_ALARMED_FUNCTIONS | WORKFLOW_STEP_FUNCTIONS
    assert not ERROR_ALARMED_FUNCTIONS & WORKFLOW_STEP_FUNCTIONS


@pytest.mark.parametrize("alarm_id", sorted(OPERATIONAL_ALARMS))
def test_operational_alarm_watches_its_metric(template: dict[str, Any], alarm_id: str) -> None:
    # Given one of the operational alarms and what it should watch
    expected = OPERATIONAL_ALARMS[alarm_id]
    namespace, metric, dimension = expected["metric"]
    alarm = _alarms(template).get(alarm_id)
    assert alarm is not None, f"{alarm_id} is missing"
    # When the metrics it evaluates are collected (a metric-math alarm's every summed term)
    watched = alarm_metrics(alarm)
    # Then it watches exactly that metric, of exactly those functions / that API / service
    assert watched == {(namespace, metric, ((dimension, value),)) for value in expected["values"]}
    # And it fires on the intended threshold, once per 5-minute period
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == expected["trigger"]
    assert alarm["EvaluationPeriods"] == 1
    periods = {m["MetricStat"]["Period"] for m in alarm.get("Metrics", []) if "MetricStat" in m}
    assert periods | ({alarm["Period"]} if "Period" in alarm else set()) == {300}


def test_workflow_not_started_alarm_watches_what_start_job_emits(
    translated: dict[str, Any],
) -> None:
    # Given the alarm, and the submit function's Powertools environment and use case
    alarm = _alarms(translated)["WorkflowNotStartedAlarm"]
    variables = translated["Resources"]["SubmitFunction"]["Properties"]["Environment"]["Variables"]
    source = (ROOT / "layers" / "common" / "imagegateway" / "use_cases" / "start_job.py").read_text(
        "utf-8"
    )
    # When its metric is compared with them / Then it is one the submit path really emits
    ((namespace, metric, dimensions),) = alarm_metrics(alarm)
    assert namespace == variables["POWERTOOLS_METRICS_NAMESPACE"]
    assert dimensions == (("service", variables["POWERTOOLS_SERVICE_NAME"]),)
    assert f'add_metric(name="{metric}"' in source


def test_upstream_submit_errors_alarm_matches_what_the_code_emits(
    translated: dict[str, Any],
) -> None:
    # Given the alarm on the custom metric, the environment Powertools Metrics reads in the
    # function that emits it, and that function's source
    alarm = _alarms(translated)["UpstreamSubmitErrorsAlarm"]
    env = translated["Resources"]["SubmitUpstreamFunction"]["Properties"]["Environment"]
    variables = env["Variables"]
    source = (
        ROOT / "layers" / "common" / "imagegateway" / "use_cases" / "steps" / "send_job.py"
    ).read_text("utf-8")
    submit_upstream = re.search(r"^def send_job\(.*?(?=^def )", source, re.M | re.S)
    assert submit_upstream
    # When the alarm's metric is compared with them
    ((namespace, metric, dimensions),) = alarm_metrics(alarm)
    # Then it is the namespace and `service` dimension Powertools publishes under, and a
    # metric submit_upstream really emits (a rename on either side would silence the alarm)
    assert namespace == variables["POWERTOOLS_METRICS_NAMESPACE"]
    assert dimensions == (("service", variables["POWERTOOLS_SERVICE_NAME"]),)
    assert f'add_metric(name="{metric}"' in submit_upstream.group(0)


@pytest.mark.parametrize("alarm_id", sorted(OPERATIONAL_ALARMS))
def test_operational_alarm_notifies_the_topic_when_given(
    template: dict[str, Any], alarm_id: str
) -> None:
    # Given one of the operational alarms and a topic ARN
    alarm = template["Resources"][alarm_id]
    topic = "arn:aws:sns:us-east-1:123456789012:operators"
    # When it is deployed with that topic, and without one (the default)
    with_topic = resolve(alarm, template, AlarmTopicArn=topic)["Properties"]
    without_topic = resolve(alarm, template)["Properties"]
    # Then it notifies the topic on alarm and on recovery, and nothing when none is given
    assert (with_topic["AlarmActions"], with_topic["OKActions"]) == ([topic], [topic])
    assert "AlarmActions" not in without_topic
    assert "OKActions" not in without_topic
    assert with_topic.get("ActionsEnabled", True) is True


def test_alarms_notify_the_optional_topic(template: dict[str, Any]) -> None:
    # Given the optional topic parameter and its condition
    assert template["Parameters"]["AlarmTopicArn"]["Default"] == ""
    assert template["Conditions"]["HasAlarmTopic"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]
    }
    expected = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    alarms = _alarms(template)
    assert alarms.keys() >= OPERATIONAL_ALARMS.keys()
    for name, alarm in alarms.items():
        # When an alarm's actions are read / Then they go to the topic, when there is one
        assert alarm["AlarmActions"] == expected, name
        assert alarm["OKActions"] == expected, name
        # And no traffic (missing data) is not a breach
        assert alarm["TreatMissingData"] == "notBreaching", name


# ---------------------------------------------------------------- least privilege


def test_every_role_grants_exactly_what_its_owner_uses(translated: dict[str, Any]) -> None:
    # Given every IAM role the deployed stack would have
    roles = resources_of_type(translated, "AWS::IAM::Role")
    # When each role's permissions are collected (inline, attached and managed)
    actual = {role_id: role_permissions(translated, role_id) for role_id in roles}
    # Then each is exactly the table above: only its owner's actions, on its owner's resources
    assert set(actual) == set(ROLE_PERMISSIONS)
    for role_id, expected in ROLE_PERMISSIONS.items():
        assert actual[role_id] == expected, role_id


def test_each_function_uses_its_own_role(translated: dict[str, Any]) -> None:
    # Given the translated functions / When their roles are read / Then none shares a role
    functions = resources_of_type(translated, "AWS::Lambda::Function")
    roles = {name: fn["Properties"]["Role"] for name, fn in functions.items()}
    assert roles == {name: {"Fn::GetAtt": [f"{name}Role", "Arn"]} for name in functions}


def test_only_log_delivery_is_granted_on_every_resource(translated: dict[str, Any]) -> None:
    # Given every Allow of every role
    roles = resources_of_type(translated, "AWS::IAM::Role")
    # When those granted on Resource "*" are collected
    wildcard = {
        (role_id, action)
        for role_id in roles
        for action, resource in role_permissions(translated, role_id)
        if resource == "*"
    }
    # Then they are only the state machine's CloudWatch Logs delivery actions, which have no
    # resource-level permissions (managed policies aside: basic execution and X-Ray writes),
    # and answering a caller's waiting task, whose token comes from any state machine
    assert wildcard
    logs = {(role, action) for role, action in wildcard if action.startswith("logs:")}
    assert {role_id for role_id, _ in logs} == {"ImageJobStateMachineRole"}
    assert {action for _, action in wildcard - logs} == {
        "states:SendTaskSuccess",
        "states:SendTaskFailure",
    }


# ---------------------------------------------------------------- checkov


def test_every_checkov_skip_is_justified() -> None:
    # Given the checks .checkov.yaml skips
    skips = checkov_skips()
    config = yaml.safe_load(CHECKOV_CONFIG.read_text(encoding="utf-8"))
    # When each is paired with the comment line above it
    assert [check for check, _ in skips] == config["skip-check"]
    # Then every skip carries a one-line reason, and nothing turns failures into warnings
    assert [check for check, reason in skips if len(reason.split()) < 8] == []
    assert not {"soft-fail", "soft-fail-on", "hard-fail-on"} & set(config)


def test_make_lint_runs_checkov_and_fails_on_findings() -> None:
    # Given the Makefile's lint recipe
    text = MAKEFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    recipe = re.search(r"^lint:.*\n((?:\t.*\n)+)", text, flags=re.M)
    assert recipe, "no lint target"
    commands = recipe.group(1)
    # When its commands are read
    # Then it runs cfn-lint and then the pinned checkov, offline, with the justified skips
    checkov_line = next(line for line in commands.splitlines() if "checkov " in line)
    assert commands.index("cfn-lint") < commands.index("checkov ")
    for flag in ("-f template.yaml", "--skip-download", "--config-file .checkov.yaml"):
        assert flag in checkov_line, flag
    assert "--soft-fail" not in checkov_line
    assert not checkov_line.lstrip().startswith("-")  # a leading "-" would ignore its exit code


@pytest.mark.skipif(
    not CHECKOV.exists(),
    reason="checkov lives in .venv-checkov, which `make lint` builds (CI always runs it); "
    "run `make .venv-checkov/.installed` to run this here",
)
def test_checkov_is_clean_on_the_sam_and_the_translated_template(
    translated: dict[str, Any], tmp_path: Path
) -> None:
    # Given the SAM template, its translation (where the IAM roles are), and a copy of the
    # template with one known finding (point-in-time recovery off) to prove checkov bites
    translated_file = tmp_path / "translated.json"
    translated_file.write_text(json.dumps(translated), encoding="utf-8")
    broken_file = tmp_path / "broken.yaml"
    broken_file.write_text(
        TEMPLATE.read_text(encoding="utf-8").replace(
            "PointInTimeRecoveryEnabled: true", "PointInTimeRecoveryEnabled: false"
        ),
        encoding="utf-8",
    )
    # When checkov checks all three, offline, with the project's skips
    result = subprocess.run(  # noqa: S603 - a fixed command, on files this test wrote
        [
            str(CHECKOV),
            *("-f", str(TEMPLATE), "-f", str(translated_file), "-f", str(broken_file)),
            *("--framework", "cloudformation", "--skip-download", "--quiet", "--compact"),
            *("--config-file", str(CHECKOV_CONFIG), "--output", "json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )
    report = json.loads(result.stdout)
    assert report["summary"]["parsing_errors"] == 0
    failed: dict[str, set[str]] = {}
    for check in report["results"]["failed_checks"]:
        name = Path(check["file_abs_path"]).name
        failed.setdefault(name, set()).add(f"{check['check_id']} {check['resource']}")
    # Then the real templates have no finding, and the broken copy fails as it should
    assert failed.pop("broken.yaml", set()) >= {
        "CKV_AWS_28 AWS::DynamoDB::Table.JobsTable",
        "CKV_AWS_28 AWS::DynamoDB::Table.IdempotencyTable",
    }
    assert failed == {}
    assert result.returncode != 0  # the finding in the broken copy fails the run


# ---------------------------------------------------------------- workflow type


def test_the_machine_may_start_itself_by_the_name_it_is_given(template: dict[str, Any]) -> None:
    # Given the state machine and its role's HandOver statement (Express: a new execution of
    # the same machine every 150 s)
    machine = template["Resources"]["ImageJobStateMachine"]["Properties"]
    statements = [
        statement
        for policy in machine["Policies"]
        for statement in policy.get("Statement", [])
        if statement.get("Sid") == "HandOverToNextExecution"
    ]
    # Then the statement names exactly the machine's own name, whose type is part of it (a
    # changed WorkflowType replaces the machine, which CloudFormation can do only under a new
    # name), and the machine's type is the parameter
    (statement,) = statements
    assert statement["Action"] == ["states:StartExecution"]
    assert machine["Name"] == {"Fn::Sub": "${AWS::StackName}-image-job-${WorkflowType}"}
    assert statement["Resource"]["Fn::Sub"].endswith(":stateMachine:" + machine["Name"]["Fn::Sub"])
    assert machine["Type"] == {"Ref": "WorkflowType"}
    assert template["Parameters"]["WorkflowType"]["AllowedValues"] == ["STANDARD", "EXPRESS"]


def test_an_express_machine_never_stretches_a_status_check(template: dict[str, Any]) -> None:
    # Given the check function's environment / Then with EXPRESS the stretch is 0 (the state
    # machine waits between checks: it bills duration, and a stretch would bill it twice)
    variables = template["Resources"]["CheckUpstreamFunction"]["Properties"]["Environment"][
        "Variables"
    ]
    assert variables["UPSTREAM_POLL_STRETCH_SECONDS"] == {
        "Fn::If": ["ExpressWorkflow", 0, {"Ref": "StatusCheckStretchSeconds"}]
    }
    assert template["Conditions"]["ExpressWorkflow"] == {
        "Fn::Equals": [{"Ref": "WorkflowType"}, "EXPRESS"]
    }
