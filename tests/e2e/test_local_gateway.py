"""The local stack's own logic, without starting it (sockets off): routes read from the
template, the API Gateway HTTP API event a request becomes, the response a function's answer
becomes, and the settings `make run` reads from the environment."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_socket
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from imagegateway.domain.owners import principal_owner
from imagegateway.entrypoints.http.resolver import caller_identity
from local.aws.lambda_runtime import Invocation
from local.aws.principals import local_principal
from local.aws.template import DEFAULT_ROUTE, HttpRoute, http_api_routes
from local.stack import StackError, StackSettings
from local.stack.gateway_http import RouteTable, answer_from_result, build_event, caller_arn


@pytest.fixture(autouse=True)
def no_network() -> Iterator[None]:
    pytest_socket.disable_socket(allow_unix_socket=True)
    yield
    pytest_socket.enable_socket()


STATUS = HttpRoute("GET", "/sd/{kind}/v1/status/{job_id}", "JobStatusFunction")


def event_for(
    method: str = "GET",
    target: str = "/sd/text2image/v1/status/abc",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    route: HttpRoute = STATUS,
    params: dict[str, str] | None = None,
) -> dict[str, Any]:
    return build_event(
        method=method,
        target=target,
        headers=headers or [("Host", "127.0.0.1:3000"), ("User-Agent", "curl/8")],
        body=body,
        route=route,
        path_parameters={"kind": "text2image", "job_id": "abc"} if params is None else params,
        user_arn=caller_arn(None),
        request_id="req-1",
        now=datetime(2026, 11, 25, 16, 0, tzinfo=UTC),
    )


# --------------------------------------------------------------------------- routes


def test_the_routes_are_the_templates_http_api_events() -> None:
    # Given template.yaml
    # When its routes are listed
    routes = http_api_routes()
    # Then they are the functions' HttpApi events, with their methods and paths
    for kind in ("text2image", "image2image", "inpainting", "controlnet"):
        assert HttpRoute("POST", f"/sd/{kind}/v1", "SubmitFunction") in routes
    assert STATUS in routes


def test_an_event_without_path_or_method_is_the_default_route() -> None:
    # Given a template whose function declares a bare HttpApi event
    template = {
        "Resources": {
            "Fallback": {
                "Type": "AWS::Serverless::Function",
                "Properties": {"Events": {"Any": {"Type": "HttpApi"}}},
            }
        }
    }
    # When its routes are listed
    (route,) = http_api_routes(template)
    # Then it is the $default route
    assert route == HttpRoute("ANY", DEFAULT_ROUTE, "Fallback")
    assert route.route_key == "$default"


def test_the_most_specific_route_wins_and_path_parameters_are_decoded() -> None:
    # Given literal, variable, greedy and default routes
    table = RouteTable(
        [
            HttpRoute("ANY", DEFAULT_ROUTE, "Fallback"),
            HttpRoute("ANY", "/files/{proxy+}", "Files"),
            HttpRoute("GET", "/items/{id}", "Item"),
            HttpRoute("GET", "/items/latest", "Latest"),
        ]
    )

    # When requests are matched
    def matched(method: str, path: str) -> tuple[str, dict[str, str]] | None:
        found = table.match(method, path)
        return None if found is None else (found[0].function, found[1])

    # Then literals beat variables, variables beat greedy paths, and $default takes the rest
    assert matched("GET", "/items/latest") == ("Latest", {})
    assert matched("GET", "/items/a%20b") == ("Item", {"id": "a b"})
    assert matched("PUT", "/files/a/b.png") == ("Files", {"proxy": "a/b.png"})
    assert matched("POST", "/items/latest") == ("Fallback", {})


def test_no_route_for_another_method_or_a_longer_path() -> None:
    # Given the template's routes only
    table = RouteTable(http_api_routes())
    # When a request matches none of them
    # Then there is no route
    assert table.match("POST", "/sd/text2image/v1/status/abc") is None
    assert table.match("GET", "/sd/text2image/v1/status/abc/more") is None
    assert table.match("GET", "/sd/text2image/v1/status/") is None
    assert table.match("post", "/sd/text2image/v1") == (
        HttpRoute("POST", "/sd/text2image/v1", "SubmitFunction"),
        {},
    )


# --------------------------------------------------------------------------- events


def test_a_request_becomes_an_http_api_v2_event() -> None:
    # Given a GET with a query string, repeated headers, cookies and the local caller header
    headers = [
        ("Host", "127.0.0.1:3000"),
        ("Accept", "application/json"),
        ("Accept", "text/plain"),
        ("Cookie", "a=1; b=2"),
        ("X-Local-Caller", "alice"),
    ]
    # When it becomes an event
    event = event_for(target="/sd/text2image/v1/status/abc?x=1&x=2&y=", headers=headers)
    # Then it has the payload 2.0 shape API Gateway sends
    assert event["version"] == "2.0"
    assert event["routeKey"] == event["requestContext"]["routeKey"] == STATUS.route_key
    assert event["rawPath"] == "/sd/text2image/v1/status/abc"
    assert event["rawQueryString"] == "x=1&x=2&y="
    assert event["queryStringParameters"] == {"x": "1,2", "y": ""}
    assert event["headers"] == {"host": "127.0.0.1:3000", "accept": "application/json,text/plain"}
    assert event["cookies"] == ["a=1", "b=2"]
    assert event["pathParameters"] == {"kind": "text2image", "job_id": "abc"}
    assert event["requestContext"]["http"]["method"] == "GET"
    assert event["requestContext"]["requestId"] == "req-1"
    assert event["requestContext"]["timeEpoch"] == 1795622400000
    assert "body" not in event
    assert event["isBase64Encoded"] is False


def test_the_caller_is_the_local_account_unless_the_header_names_another() -> None:
    # Given the default caller and a named one
    # When their ARNs are made
    # Then they are the local account itself and an IAM user of it
    assert caller_arn(None) == "arn:aws:iam::123456789012:root"
    assert caller_arn("alice") == "arn:aws:iam::123456789012:user/alice"
    # And a name IAM would not allow is refused
    with pytest.raises(ValueError, match="X-Local-Caller"):
        caller_arn("../admin")


def test_the_functions_read_the_caller_from_the_event() -> None:
    # Given an event for alice
    event = build_event(
        method="GET",
        target="/sd/text2image/v1/status/abc",
        headers=[],
        body=b"",
        route=STATUS,
        path_parameters={"kind": "text2image", "job_id": "abc"},
        user_arn=caller_arn("alice"),
    )
    # When the gateway's own code reads the caller
    # Then it is alice, by the unique id SQS would name her messages with too
    assert caller_identity(APIGatewayProxyEventV2(event)) == principal_owner(
        local_principal("alice").unique_id
    )


def test_a_text_body_is_passed_as_text_and_a_binary_one_as_base64() -> None:
    # Given a UTF-8 body and a body that is not UTF-8
    text = event_for(method="POST", body='{"prompt": "café"}'.encode())
    binary = event_for(method="POST", body=b"\xff\xfe\x00")
    # When they become events
    # Then the first is text, the second base64
    assert text["body"] == '{"prompt": "café"}'
    assert text["isBase64Encoded"] is False
    assert binary["isBase64Encoded"] is True
    assert base64.b64decode(binary["body"]) == b"\xff\xfe\x00"


# --------------------------------------------------------------------------- answers


def test_a_function_answer_becomes_the_http_response() -> None:
    # Given a payload 2.0 answer with headers, cookies and a base64 body
    result = {
        "statusCode": 201,
        "headers": {"Content-Type": "image/png"},
        "cookies": ["c=3"],
        "body": base64.b64encode(b"\x89PNG").decode(),
        "isBase64Encoded": True,
    }
    # When it becomes a response
    answer = answer_from_result(result)
    # Then the status, headers and decoded body are API Gateway's
    assert answer.status == 201
    assert ("Content-Type", "image/png") in answer.headers
    assert ("Set-Cookie", "c=3") in answer.headers
    assert answer.body == b"\x89PNG"


def test_an_answer_without_status_code_is_a_200_json_body() -> None:
    # Given an answer that is plain JSON
    # When it becomes a response
    answer = answer_from_result({"hello": "world"})
    # Then API Gateway's rule applies: 200, application/json, the value as the body
    assert answer.status == 200
    assert ("Content-Type", "application/json") in answer.headers
    assert json.loads(answer.body) == {"hello": "world"}


def test_an_invocation_names_its_job_from_the_event_or_the_answer() -> None:
    # Given a task event, a status request and a submit answer
    task = Invocation("check_upstream", "fn", {"job_id": "j1"})
    status = Invocation(
        "job_status", "fn", {"pathParameters": {"kind": "inpainting", "job_id": "j2"}}
    )
    submit = Invocation(
        "submit", "fn", {"body": '{"id": "not-this"}'}, {"statusCode": 202, "body": '{"id": "j3"}'}
    )
    # When their job ids are read
    # Then each names its job (and a request body is never taken for one)
    assert (task.job_id, status.job_id, submit.job_id) == ("j1", "j2", "j3")
    assert Invocation("submit", "fn", {"body": '{"id": "x"}'}).job_id is None


# --------------------------------------------------------------------------- settings


def test_the_local_defaults() -> None:
    # Given an environment that sets nothing
    # When the stack's settings are read
    settings = StackSettings.from_environment({})
    # Then it uses the contract's ports, the fake upstream, and the deployed timing
    assert (settings.gateway_port, settings.moto_port, settings.fake_port) == (3000, 5000, 8081)
    assert settings.uses_fake
    assert settings.fake_api_key == "local-dev-key"
    assert settings.fake_pending_polls == 2
    assert settings.log_level == "WARNING"
    assert "POLL_INTERVAL_SECONDS" not in settings.environment  # the template's value applies
    assert settings.reconcile_interval_seconds == 30
    assert settings.environment["POWERTOOLS_TRACE_DISABLED"] == "true"


def test_settings_go_to_the_templates_parameters_or_the_functions_variables() -> None:
    # Given settings the functions read, one of them backed by a template parameter, and
    # variables the stack owns
    environ = {
        "JOB_DEADLINE_SECONDS": "20",
        "POLL_INTERVAL_SECONDS": "1",
        "POLL_MAX_INTERVAL_SECONDS": "1",
        "JOBS_TABLE_NAME": "someone-elses-table",
        "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:1:stateMachine:other",
        "LOG_LEVEL": "info",
        "GATEWAY_PORT": "0",
    }
    # When the stack's settings are read
    settings = StackSettings.from_environment(environ)
    # Then the deadline is the template parameter, the polls are function variables
    assert settings.parameters["JobDeadlineSeconds"] == "20"
    assert settings.environment["POLL_INTERVAL_SECONDS"] == "1"
    assert settings.environment["POLL_MAX_INTERVAL_SECONDS"] == "1"
    # And the resource names stay the stack's own
    assert "JOBS_TABLE_NAME" not in settings.environment
    assert "STATE_MACHINE_ARN" not in settings.environment
    assert settings.log_level == "INFO"
    assert settings.gateway_port == 0


def test_a_real_api_key_switches_to_the_real_upstream_and_is_never_shown() -> None:
    # Given the real upstream's key
    # When the stack's settings are read
    settings = StackSettings.from_environment({"IMAGEPIPELINE_API_KEY": "real-key-123456"})
    # Then the real upstream is used, and the key is not in the settings' repr
    assert not settings.uses_fake
    assert settings.upstream_base_url == "https://api.imagepipeline.io"
    assert "real-key-123456" not in repr(settings)


@pytest.mark.parametrize(
    ("name", "value"),
    [("GATEWAY_PORT", "http"), ("MOTO_PORT", "70000"), ("LOG_LEVEL", "LOUD"),
     ("FAKE_PENDING_POLLS", "-1")],
)  # fmt: skip
def test_an_invalid_setting_stops_the_stack_with_its_name(name: str, value: str) -> None:
    # Given an invalid setting
    # When the stack's settings are read
    # Then the error names it
    with pytest.raises(StackError, match=name):
        StackSettings.from_environment({name: value})
