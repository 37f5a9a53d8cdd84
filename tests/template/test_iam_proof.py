"""The IAM proof's own rules (tests/support/iam_proof.py): IAM's wildcards and Deny, and the
requests a call needs, so a recorded call is judged as AWS would judge it."""

from __future__ import annotations

from local.aws.aws_calls import AwsCall, CallSink
from tests.support.iam_proof import Statement, allows, iam_requests, prove

ARN = "arn:aws:{}:us-east-1:123456789012:{}"
# A stack's names for what the submit function's role names (as `stack_names` gives them).
NAMES = {
    "Ref": {
        "UpstreamApiKeySecret": ARN.format("secretsmanager", "secret:k-Ab12"),
        "ImageJobStateMachine": ARN.format("states", "stateMachine:machine"),
        "AWS::Partition": "aws",
        "AWS::Region": "us-east-1",
        "AWS::AccountId": "123456789012",
    },
    "Arn": {
        "JobsTable": ARN.format("dynamodb", "table/jobs"),
        "UsageTable": ARN.format("dynamodb", "table/usage"),
        "IdempotencyTable": ARN.format("dynamodb", "table/idempotency"),
        "ImagesBucket": "arn:aws:s3:::images",
        "EventBus": ARN.format("events", "event-bus/bus"),
        "WebhookQueue": ARN.format("sqs", "webhooks"),
    },
    "Name": {"ImageJobStateMachine": "machine"},
}


def call(service: str, operation: str, **params: object) -> AwsCall:
    return AwsCall("SubmitFunction", "stack", service, operation, dict(params))


def test_actions_match_case_insensitively_and_resources_by_wildcards() -> None:
    # Given a statement with wildcards in both its action and its resource
    statement = Statement("Allow", ("S3:Get*",), ("arn:aws:s3:::images/jobs/?/*",))
    # When requests are evaluated / Then * spans "/" and ":", ? is one character, case only
    # matters in resources
    assert allows([statement], "s3:GetObject", "arn:aws:s3:::images/jobs/a/b/0.png")
    assert not allows([statement], "s3:GetObject", "arn:aws:s3:::images/jobs/ab/0.png")
    assert not allows([statement], "s3:GetObject", "arn:aws:s3:::IMAGES/jobs/a/0.png")
    assert not allows([statement], "s3:PutObject", "arn:aws:s3:::images/jobs/a/0.png")


def test_an_explicit_deny_wins_over_any_allow() -> None:
    # Given an Allow on everything and a Deny on one action
    statements = [
        Statement("Allow", ("sqs:*",), ("*",)),
        Statement("Deny", ("sqs:DeleteMessage",), ("*",)),
    ]
    # When / Then the denied action is refused, the others allowed
    assert not allows(statements, "sqs:DeleteMessage", "arn:aws:sqs:us-east-1:1:q")
    assert allows(statements, "sqs:ReceiveMessage", "arn:aws:sqs:us-east-1:1:q")


def test_a_call_becomes_the_requests_iam_authorizes() -> None:
    # Given calls whose IAM request is not simply service:Operation on one ARN
    copy = call(
        "s3", "CopyObject", Bucket="images", Key="jobs/b/0.png",
        CopySource={"Bucket": "images", "Key": "jobs/a/0.png"},
    )  # fmt: skip
    query = call("dynamodb", "Query", TableName="jobs", IndexName="ByCacheKey")
    batch = call("sqs", "DeleteMessageBatch", QueueUrl="http://localhost/123456789012/q")
    token = call("states", "SendTaskSuccess")
    secret = call("secretsmanager", "GetSecretValue", SecretId="k-Ab12")
    # When they are translated / Then each asks what AWS would check
    assert iam_requests(copy, NAMES) == [
        ("s3:GetObject", "arn:aws:s3:::images/jobs/a/0.png"),
        ("s3:PutObject", "arn:aws:s3:::images/jobs/b/0.png"),
    ]
    assert iam_requests(query, NAMES) == [
        ("dynamodb:Query", "arn:aws:dynamodb:us-east-1:123456789012:table/jobs/index/ByCacheKey")
    ]
    assert iam_requests(batch, NAMES) == [
        ("sqs:DeleteMessage", "arn:aws:sqs:us-east-1:123456789012:q")
    ]
    assert iam_requests(token, NAMES) == [("states:SendTaskSuccess", "*")]
    assert iam_requests(secret, NAMES) == [
        ("secretsmanager:GetSecretValue", NAMES["Ref"]["UpstreamApiKeySecret"])
    ]


def test_a_call_its_role_does_not_grant_is_named_with_its_function_action_and_resource() -> None:
    # Given the submit function's recorded calls: one its role grants, one it does not
    sink = CallSink()
    sink.stacks["stack"] = NAMES
    sink.calls += [
        call("dynamodb", "PutItem", TableName="jobs"),
        call("dynamodb", "DeleteItem", TableName="jobs"),
    ]
    # When they are proven against its role in the translated template
    proof = prove([sink])
    # Then the one refused is named, and both count among its distinct calls
    assert proof.violations == [
        "SubmitFunction calls dynamodb:DeleteItem on"
        " arn:aws:dynamodb:us-east-1:123456789012:table/jobs [<JobsTable>]:"
        " its role does not grant it"
    ]
    assert proof.distinct["SubmitFunction"] == {
        ("dynamodb:PutItem", "<JobsTable>"),
        ("dynamodb:DeleteItem", "<JobsTable>"),
    }
