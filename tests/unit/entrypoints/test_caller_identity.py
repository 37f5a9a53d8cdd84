"""Who owns a job: an identity the caller cannot choose, stable across its sessions, and the same
name on every entry (SQS names a sender by the same unique id)."""

from __future__ import annotations

import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from imagegateway.domain.owners import (
    UnknownPrincipalError,
    account_owner,
    principal_owner,
)
from imagegateway.entrypoints.http.resolver import ANONYMOUS, caller_identity
from tests.support.events import load_event

ROLE_OWNER = "iam:AROA3XFRBF535EXAMPLE1"


def _with_iam(user_arn: str, caller_id: str) -> APIGatewayProxyEventV2:
    event = load_event("submit")
    iam = event["requestContext"]["authorizer"]["iam"]
    iam["userArn"], iam["callerId"], iam["userId"] = user_arn, caller_id, caller_id
    return APIGatewayProxyEventV2(event)


def test_an_assumed_role_owns_the_job_not_its_session() -> None:
    # Given the sample event: role "client" (AROA3XFRBF535EXAMPLE1), session "alice"
    event = APIGatewayProxyEventV2(load_event("submit"))
    # Then the owner is the role, whatever the session is called
    assert caller_identity(event) == ROLE_OWNER


def test_a_session_named_like_another_caller_does_not_become_that_caller() -> None:
    # Given another role whose session is named "alice", like the sample's caller
    other = _with_iam(
        "arn:aws:sts::123456789012:assumed-role/other/alice", "AROAOTHER0000000:alice"
    )
    # Then it does not share Alice's identity
    assert caller_identity(other) == "iam:AROAOTHER0000000"
    assert caller_identity(other) != caller_identity(APIGatewayProxyEventV2(load_event("submit")))


def test_one_role_keeps_its_identity_across_sessions() -> None:
    first = _with_iam(
        "arn:aws:sts::123456789012:assumed-role/client/task-1", "AROA3XFRBF535EXAMPLE1:task-1"
    )
    second = _with_iam(
        "arn:aws:sts::123456789012:assumed-role/client/task-2", "AROA3XFRBF535EXAMPLE1:task-2"
    )
    assert caller_identity(first) == caller_identity(second) == ROLE_OWNER


def test_an_iam_user_owns_its_jobs_by_its_unique_id_as_sqs_names_its_messages() -> None:
    # Given user bob calling over HTTP, and the SenderId SQS gives bob's messages
    user = _with_iam("arn:aws:iam::123456789012:user/bob", "AIDABOB000000000000")
    # Then both are one owner
    assert (
        caller_identity(user) == principal_owner("AIDABOB000000000000") == "iam:AIDABOB000000000000"
    )


def test_an_account_root_and_an_eventbridge_account_are_one_owner() -> None:
    root = _with_iam("arn:aws:iam::123456789012:root", "123456789012")
    assert caller_identity(root) == account_owner("123456789012") == "account:123456789012"


@pytest.mark.parametrize("sender", ["", "bob", "AIDA:x", "aida0000000000000000", "1234"])
def test_what_is_not_an_aws_principal_id_owns_nothing(sender: str) -> None:
    with pytest.raises(UnknownPrincipalError):
        principal_owner(sender)


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
