"""Who owns a job: the IAM principal, else a JWT subject, else anonymous."""

from __future__ import annotations

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from imagegateway.http import ANONYMOUS, caller_identity
from tests.support.events import load_event


def test_the_iam_principal_owns_the_job() -> None:
    event = load_event("submit")
    assert caller_identity(APIGatewayProxyEventV2(event)) == (
        "arn:aws:sts::123456789012:assumed-role/client/alice"
    )


def test_a_jwt_subject_owns_the_job_when_that_authorizer_is_configured() -> None:
    event = load_event("submit")
    event["requestContext"]["authorizer"] = {"jwt": {"claims": {"sub": "user-7"}, "scopes": []}}
    assert caller_identity(APIGatewayProxyEventV2(event)) == "jwt:user-7"


def test_without_an_authorizer_the_caller_is_anonymous() -> None:
    event = load_event("submit")
    del event["requestContext"]["authorizer"]
    assert caller_identity(APIGatewayProxyEventV2(event)) == ANONYMOUS
