"""The IAM roles and policies: each role grants exactly what its owner uses, never a wildcard.

These tests read files only: no network, no AWS account, no Docker.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.template.support import as_list, iter_statements, render, resources_of_type

pytestmark = pytest.mark.usefixtures("no_network")


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
        ("dynamodb:UpdateItem", "<JobsTable.Arn>"),  # a workflow not started ends its job
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
        # imagegateway.adapters.upstream_durations: the shape's samples (the first check)
        ("dynamodb:GetItem", "<UsageTable.Arn>"),
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
        # GET /v1/webhooks/secret: the caller's secret is derived from the master secret
        ("secretsmanager:GetSecretValue", "<WebhookSigningSecret>"),
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
        # imagegateway.adapters.upstream_durations: the job's sample for its shape
        ("dynamodb:UpdateItem", "<UsageTable.Arn>"),
        ("events:PutEvents", "<EventBus.Arn>"),  # the job's completion, a folded duplicate's
        (BASIC_EXECUTION, ""),
        (XRAY_WRITE, ""),
        *TELL_CALLERS,
    },
    "RecordFailureFunctionRole": {
        # imagegateway.adapters.usage_store: the caller's daily count (and ledger, give-backs)
        ("dynamodb:UpdateItem", "<UsageTable.Arn>"),
        ("dynamodb:GetItem", "<JobsTable.Arn>"),
        ("dynamodb:UpdateItem", "<JobsTable.Arn>"),
        ("events:PutEvents", "<EventBus.Arn>"),  # the job's completion, a folded duplicate's
        (BASIC_EXECUTION, ""),
        (XRAY_WRITE, ""),
        *TELL_CALLERS,
    },
    "ReconcilerFunctionRole": {
        # imagegateway.adapters.usage_store: the caller's daily count (and ledger, give-backs)
        ("dynamodb:UpdateItem", "<UsageTable.Arn>"),
        ("dynamodb:Query", "<JobsTable.Arn>/index/PendingByDeadline"),
        # The ends left untold (imagegateway.adapters.job_endings).
        ("dynamodb:Query", "<JobsTable.Arn>/index/UntoldByCompleted"),
        # ...whose completions, told late, carry presigned URLs.
        ("s3:GetObject", "<ImagesBucket.Arn>/*"),
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
        ("events:PutEvents", "<EventBus.Arn>"),  # a job it ends, an end left untold
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
        ("sqs:ChangeMessageVisibility", "<BusRequestQueue.Arn>"),
        ("sqs:GetQueueUrl", "<BusRequestQueue.Arn>"),
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
