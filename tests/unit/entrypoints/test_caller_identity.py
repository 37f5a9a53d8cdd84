"""Who owns a job: an identity the caller cannot choose, stable across its sessions."""

from __future__ import annotations

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from imagegateway.entrypoints.http.resolver import ANONYMOUS, caller_identity
from tests.support.events import load_event

ROLE_OWNER = "arn:aws:iam::123456789012:role/client"


def _with_iam(user_arn: str, caller_id: str) -> APIGatewayProxyEventV2:
    event = load_event("submit")
    iam = event["requestContext"]["authorizer"]["iam"]
    iam["userArn"], iam["callerId"], iam["userId"] = user_arn, caller_id, caller_id
    return APIGatewayProxyEventV2(event)


def test_an_assumed_role_owns_the_job_not_its_session() -> None:
    # Given the sample event: role "client", session "alice"
    event = APIGatewayProxyEventV2(load_event("submit"))
    # Then the owner is the role, whatever the session is called
    assert caller_identity(event) == ROLE_OWNER


def test_a_session_named_like_another_caller_does_not_become_that_caller() -> None:
    # Given another role whose session is named "alice", like the sample's caller
    other = _with_iam("arn:aws:sts::123456789012:assumed-role/other/alice", "AROAOTHER:alice")
    # Then it does not share Alice's identity
    assert caller_identity(other) == "arn:aws:iam::123456789012:role/other"
    assert caller_identity(other) != caller_identity(APIGatewayProxyEventV2(load_event("submit")))


def test_one_role_keeps_its_identity_across_sessions() -> None:
    first = _with_iam("arn:aws:sts::123456789012:assumed-role/client/task-1", "AROAEXAMPLE:task-1")
    second = _with_iam("arn:aws:sts::123456789012:assumed-role/client/task-2", "AROAEXAMPLE:task-2")
    assert caller_identity(first) == caller_identity(second) == ROLE_OWNER


def test_an_iam_user_owns_its_jobs_by_its_arn() -> None:
    user = _with_iam("arn:aws:iam::123456789012:user/bob", "AIDAEXAMPLE")
    assert caller_identity(user) == "arn:aws:iam::123456789012:user/bob"


def test_a_jwt_subject_owns_the_job_when_that_authorizer_is_configured() -> None:
    event = load_event("submit")
    event["requestContext"]["authorizer"] = {
        "jwt": {"claims": {"sub": "user-7", "iss": "https://idp.example"}, "scopes": []}
    }
    assert caller_identity(APIGatewayProxyEventV2(event)) == "jwt:https://idp.example#user-7"


def test_without_an_authorizer_the_caller_is_anonymous() -> None:
    event = load_event("submit")
    del event["requestContext"]["authorizer"]
    assert caller_identity(APIGatewayProxyEventV2(event)) == ANONYMOUS
