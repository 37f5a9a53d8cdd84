"""The bus that carries completions: nobody but the gateway's own publishing roles can put an
event that looks like the gateway's (its Source, or a completion detail type) on it.

Requests and completions share one bus (DESIGN.md, "Event-driven entries and completion"), and
every pipeline that asks for images holds events:PutEvents on it. The bus's resource policy is
what keeps a pipeline from forging another team's `Image Generation Succeeded`. These tests
evaluate that policy's statements as written, with a small IAM-style evaluator (explicit Deny
wins; Principal, Action, Resource and the condition operators the policy uses), against
concrete requests. They read files only: no network, no AWS account.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from imagegateway.domain.events import EVENT_SOURCE, DetailType
from tests.template.support import as_list, iter_statements, resources_of_type

pytestmark = pytest.mark.usefixtures("no_network")


ACCOUNT = "111122223333"
OTHER_ACCOUNT = "444455556666"
BUS_ID = "EventBus"
BUS_ARN = f"arn:aws:events:us-east-1:{ACCOUNT}:event-bus/gw-images"
COMPLETIONS = (DetailType.SUCCEEDED.value, DetailType.FAILED.value)


def role_arn(role_id: str) -> str:
    """The ARN CloudFormation would give a role of the stack (a generated name, no path)."""
    return f"arn:aws:iam::{ACCOUNT}:role/gw-{role_id}-1A2B3C4D5E6F"


# --- the template's values made concrete ------------------------------------------------------


def concrete(value: Any) -> Any:
    """value with the intrinsics a bus policy uses resolved to this test's stack."""
    if isinstance(value, list):
        return [concrete(item) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Fn::GetAtt":
            name, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            assert attribute == "Arn", value
            return BUS_ARN if name == BUS_ID else role_arn(name)
        if function == "Ref":
            pseudo = {"AWS::AccountId": ACCOUNT, "AWS::Partition": "aws", BUS_ID: "gw-images"}
            return pseudo[argument]
        assert not function.startswith(("Fn::", "Ref")), f"unresolved intrinsic {value!r}"
    return {key: concrete(item) for key, item in value.items()}


def bus_policy_statements(cfn: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every statement of the gateway bus's resource policy, wherever the template puts it: an
    AWS::Events::EventBusPolicy on the bus, or the bus's own Policy property."""
    statements: list[dict[str, Any]] = []
    for policy in resources_of_type(dict(cfn), "AWS::Events::EventBusPolicy").values():
        props = policy["Properties"]
        if props.get("EventBusName") in ({"Ref": BUS_ID}, {"Fn::GetAtt": [BUS_ID, "Name"]}):
            statements.extend(as_list(props["Statement"]))
    statements.extend(iter_statements(cfn["Resources"][BUS_ID]["Properties"].get("Policy", {})))
    return [concrete(statement) for statement in statements]


def publishing_roles(cfn: Mapping[str, Any]) -> set[str]:
    """The stack's roles granted events:PutEvents on the bus: the gateway's own publishers."""
    return {
        role_id
        for role_id, role in resources_of_type(dict(cfn), "AWS::IAM::Role").items()
        for statement in iter_statements(role["Properties"].get("Policies", []))
        if statement.get("Effect") == "Allow"
        and "events:PutEvents" in as_list(statement.get("Action", []))
        and {"Fn::GetAtt": [BUS_ID, "Arn"]} in as_list(statement.get("Resource", []))
    }


# --- a small IAM-style evaluator --------------------------------------------------------------


@dataclass(frozen=True)
class PutEvents:
    """One PutEvents entry on the gateway's bus, as the bus policy sees it."""

    principal_arn: str | None  # aws:PrincipalArn; None: the request carries none
    source: str
    detail_type: str
    action: str = "events:PutEvents"
    resource: str = BUS_ARN

    def context(self) -> dict[str, str]:
        keys = {"events:source": self.source, "events:detail-type": self.detail_type}
        if self.principal_arn is not None:
            keys["aws:PrincipalArn"] = self.principal_arn
            keys["aws:PrincipalAccount"] = self.principal_arn.split(":")[4]
        # IAM condition keys are case-insensitive.
        return {key.lower(): value for key, value in keys.items()}


def _like(pattern: str, value: str) -> bool:
    # IAM's * and ? wildcards, nothing else (fnmatch would also read [...]).
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


_OPERATORS = {
    "StringEquals": lambda pattern, value: pattern == value,
    "StringLike": _like,
    "ArnEquals": lambda pattern, value: pattern == value,
    "ArnLike": _like,
}


def _condition_holds(operator: str, key: str, wanted: Any, context: Mapping[str, str]) -> bool:
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    negated = base.replace("Not", "", 1) if "Not" in base else None
    match = _OPERATORS.get(negated or base)
    assert match is not None, f"the evaluator does not know {operator}: teach it first"
    value = context.get(key.lower())
    if value is None:
        # IAM: a missing key matches nothing, so a negated operator holds (and IfExists holds).
        return if_exists or negated is not None
    matched = any(match(str(pattern), value) for pattern in as_list(wanted))
    return not matched if negated else matched


def _principal_matches(principal: Any, request: PutEvents) -> bool:
    if principal == "*":
        return True
    aws = as_list(principal.get("AWS", [])) if isinstance(principal, dict) else []
    arn = request.principal_arn or ""
    return any(p == "*" or p == arn or p == arn.split(":")[4] for p in aws)


def applies(statement: Mapping[str, Any], request: PutEvents) -> bool:
    """Whether a statement speaks to this request (its Effect aside)."""
    # The evaluator reads no Not* elements: a policy that grows one must teach it first.
    unread = {"NotPrincipal", "NotAction", "NotResource"} & statement.keys()
    assert not unread, statement
    return (
        _principal_matches(statement.get("Principal"), request)
        and any(_like(a.lower(), request.action.lower()) for a in as_list(statement["Action"]))
        and any(_like(r, request.resource) for r in as_list(statement["Resource"]))
        and all(
            _condition_holds(operator, key, wanted, request.context())
            for operator, block in statement.get("Condition", {}).items()
            for key, wanted in block.items()
        )
    )


def explicitly_denied(statements: list[dict[str, Any]], request: PutEvents) -> bool:
    """An explicit Deny in a resource policy wins over any Allow, in the bus's own account as in
    another (IAM policy evaluation logic)."""
    return any(s["Effect"] == "Deny" and applies(s, request) for s in statements)


# --- principals -------------------------------------------------------------------------------

FOREIGN_PRINCIPALS = {
    "another team's role in the account": f"arn:aws:iam::{ACCOUNT}:role/team-b-pipeline",
    "the account's root": f"arn:aws:iam::{ACCOUNT}:root",
    "a role of another account": f"arn:aws:iam::{OTHER_ACCOUNT}:role/pipeline",
    "a role named like a gateway role": role_arn("SubmitFunctionRole") + "-x",
    "a request without a principal ARN": None,
}


@pytest.fixture(scope="module")
def statements(translated: dict[str, Any]) -> list[dict[str, Any]]:
    return bus_policy_statements(translated)


# --- tests ------------------------------------------------------------------------------------


def test_the_bus_has_a_policy_that_grants_nothing(statements: list[dict[str, Any]]) -> None:
    # Given the bus policy as the translated template declares it
    # When its statements are read
    # Then there are some, and all deny: the policy opens the bus to no other account
    assert statements, "the gateway's bus has no resource policy"
    assert {statement["Effect"] for statement in statements} == {"Deny"}


@pytest.mark.parametrize("detail_type", [*COMPLETIONS, DetailType.REQUESTED.value, "Anything"])
@pytest.mark.parametrize("principal", FOREIGN_PRINCIPALS.values(), ids=FOREIGN_PRINCIPALS.keys())
def test_a_foreign_principal_cannot_put_the_gateways_source(
    statements: list[dict[str, Any]], principal: str | None, detail_type: str
) -> None:
    # Given a principal that is not one of the gateway's publishing roles
    request = PutEvents(principal, source=EVENT_SOURCE, detail_type=detail_type)
    # When it puts an event with the gateway's Source on the bus
    # Then the bus policy denies it, whatever the detail type
    assert explicitly_denied(statements, request)


@pytest.mark.parametrize("detail_type", COMPLETIONS)
@pytest.mark.parametrize("principal", FOREIGN_PRINCIPALS.values(), ids=FOREIGN_PRINCIPALS.keys())
def test_a_foreign_principal_cannot_put_a_completion_under_another_source(
    statements: list[dict[str, Any]], principal: str | None, detail_type: str
) -> None:
    # Given a principal that is not one of the gateway's publishing roles
    request = PutEvents(principal, source="team-b.pipeline", detail_type=detail_type)
    # When it puts a completion detail type under a source of its own
    # Then the bus policy denies it: a consumer matching only the detail type is not fooled
    assert explicitly_denied(statements, request)


@pytest.mark.parametrize("source", ["team-b.pipeline", "com.example.orders", "imagepipeline"])
@pytest.mark.parametrize("principal", FOREIGN_PRINCIPALS.values(), ids=FOREIGN_PRINCIPALS.keys())
def test_anyone_may_still_ask_for_images(
    statements: list[dict[str, Any]], principal: str | None, source: str
) -> None:
    # Given any principal, the gateway's or not
    request = PutEvents(principal, source=source, detail_type=DetailType.REQUESTED.value)
    # When it puts an Image Generation Requested event with a source of its own
    # Then the bus policy does not deny it (its own IAM permissions decide, as before)
    assert not explicitly_denied(statements, request)


def test_the_gateways_publishing_roles_may_put_completions(
    translated: dict[str, Any], statements: list[dict[str, Any]]
) -> None:
    # Given every role of the stack granted events:PutEvents on the bus
    publishers = publishing_roles(translated)
    assert {
        "StoreImagesFunctionRole",
        "RecordFailureFunctionRole",
        "IntakeFunctionRole",
    } <= publishers
    assert "ImageJobStateMachineRole" not in publishers  # the workflow's steps publish
    # When each puts a completion with the gateway's Source
    denied = {
        (role_id, detail_type)
        for role_id in publishers
        for detail_type in COMPLETIONS
        if explicitly_denied(statements, PutEvents(role_arn(role_id), EVENT_SOURCE, detail_type))
    }
    # Then none is denied: every publisher is exempt (a new publisher must be added to the policy)
    assert denied == set()


def test_a_gateway_role_that_does_not_publish_is_not_exempt(
    translated: dict[str, Any], statements: list[dict[str, Any]]
) -> None:
    # Given the stack's roles that hold no events:PutEvents on the bus
    others = set(resources_of_type(translated, "AWS::IAM::Role")) - publishing_roles(translated)
    assert "SubmitUpstreamFunctionRole" in others
    # When each puts a completion with the gateway's Source (a compromised function, say)
    allowed = {
        role_id
        for role_id in others
        if not explicitly_denied(
            statements, PutEvents(role_arn(role_id), EVENT_SOURCE, DetailType.SUCCEEDED.value)
        )
    }
    # Then the bus denies it too: exactly the publishers are exempt
    assert allowed == set()
