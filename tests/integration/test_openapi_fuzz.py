"""schemathesis against the gateway's own OpenAPI document (served by Powertools at
/openapi.json): generated requests, through the local HTTP API's event mapping, into the real
handlers on moto and the fake upstream. No 5xx; every answer matches the document."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance, unsupported_method

from local.aws.lambda_runtime import LambdaContext, load_handler
from local.aws.resources import LocalStack
from local.aws.template import REPO, http_api_routes
from local.fake_upstream import FakeUpstream
from local.stack.gateway_http import GatewayServer

MIN_CASES = 500
CASES_PER_OPERATION = 300
cases_sent: list[str] = []

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def wsgi_gateway(stack: LocalStack) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """A WSGI app that turns each request into the HTTP API event the template routes it to,
    exactly as `make run` does, and calls the function's handler in this process."""

    def invoke(route: Any, event: dict[str, Any]) -> Any:
        code_dir = stack.function_dirs[stack.function_names[route.function]]
        return load_handler(code_dir)(event, LambdaContext(function_name=route.function))

    gateway = GatewayServer(http_api_routes(), invoke)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = [
            (key[5:].replace("_", "-").lower(), str(value))
            for key, value in environ.items()
            if key.startswith("HTTP_")
        ]
        if environ.get("CONTENT_TYPE"):
            headers.append(("content-type", environ["CONTENT_TYPE"]))
        target = environ.get("PATH_INFO", "/")
        if environ.get("QUERY_STRING"):
            target += "?" + environ["QUERY_STRING"]
        cases_sent.append(f"{environ['REQUEST_METHOD']} {target}")
        answer = gateway.handle(
            environ["REQUEST_METHOD"],
            target,
            headers,
            body,
            source_ip="127.0.0.1",
            protocol="HTTP/1.1",
            request_id=str(uuid.uuid4()),
        )
        start_response(f"{answer.status} -", answer.headers)
        return [answer.body]

    return app


def _served_document() -> dict[str, Any]:
    """The document the status function serves at /openapi.json (no AWS call is needed)."""
    load_handler(REPO / "functions" / "job_status")
    status_app = sys.modules["functions.job_status.app"].app
    document: dict[str, Any] = json.loads(status_app.get_openapi_json_schema())
    return document


current: dict[str, Any] = {}


def gateway_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    return current["app"](environ, start_response)


schema = schemathesis.openapi.from_dict(_served_document())
schema.app = gateway_app


@pytest.fixture(autouse=True)
def gateway_over(stack: LocalStack, upstream: FakeUpstream) -> Iterator[None]:
    current["app"] = wsgi_gateway(stack)
    yield
    current.clear()


@schema.parametrize()
@settings(
    max_examples=CASES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_generated_requests_get_no_5xx_and_documented_answers(case: Any) -> None:
    # Two checks do not apply. API Gateway itself answers an undeclared method with 404, not
    # 405 (and the local HTTP API does the same). And some rules span fields (one LoRA weight
    # per model, a prompt that is not all blanks), which JSON Schema cannot say, so a
    # schema-valid body may rightly get a 422; invalid bodies must still be rejected.
    case.call_and_validate(excluded_checks=[unsupported_method, positive_data_acceptance])


def test_enough_cases_were_generated(gateway_over: None) -> None:
    # Runs after the generated tests in this module (pytest keeps file order).
    print(f"schemathesis sent {len(cases_sent)} requests")
    assert len(cases_sent) >= MIN_CASES, len(cases_sent)
