"""The HTTP APIs: the IAM API and the keyed one (its API-key authorizer), their routes, access logs.

These tests read files only: no network, no AWS account, no Docker.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.template.support import resources_of_type

pytestmark = pytest.mark.usefixtures("no_network")


# Served without auth on both APIs: the API's description and the console's page hold no job
# data, and a browser's navigation can carry neither a signature nor an API key. The console's
# own calls for data go to the authenticated routes.
PUBLIC_PATHS = ("/openapi.json", "/swagger", "/console")


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
            [{"NONE": []}] if route.split()[1] in PUBLIC_PATHS else [{"ApiKeyAuthorizer": []}]
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
    # description (the OpenAPI document and its Swagger UI) and the console's page, which a
    # browser must read
    assert set(routes) == {
        "POST /sd/text2image/v1",
        "POST /sd/image2image/v1",
        "POST /sd/inpainting/v1",
        "POST /sd/controlnet/v1",
        "GET /sd/{kind}/v1/status/{job_id}",
        "GET /v1/jobs",
        "POST /v1/jobs/{job_id}/cancel",
        "GET /v1/usage",
        "GET /v1/webhooks/secret",
        "GET /openapi.json",
        "GET /swagger",
        "GET /console",
    }
    for route, operation in routes.items():
        expected = [{"NONE": []}] if route.split()[1] in PUBLIC_PATHS else [{"AWS_IAM": []}]
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


def test_the_local_gateway_serves_without_auth_exactly_the_templates_public_routes(
    template: dict[str, Any],
) -> None:
    # Given the routes the template serves without an authorizer, on either API
    from local.stack.gateway_http import PUBLIC_PATHS as LOCAL_PUBLIC_PATHS

    public = {
        event["Properties"]["Path"]
        for function in resources_of_type(template, "AWS::Serverless::Function").values()
        for event in (function["Properties"].get("Events") or {}).values()
        if event["Type"] == "HttpApi"
        and (event["Properties"].get("Auth") or {}).get("Authorizer") == "NONE"
    }
    # Then the local stack skips its key check on exactly those (and they are the ones above)
    assert public == set(LOCAL_PUBLIC_PATHS) == set(PUBLIC_PATHS)
