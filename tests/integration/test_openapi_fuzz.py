"""schemathesis against the gateway's own OpenAPI document (served by Powertools at
/openapi.json): generated requests, positive and negative, to every documented route, through
the local HTTP API's event mapping, into the real handlers on moto and the fake upstream. No
5xx; every answer matches the document.

`make test` runs a short pass (FUZZ_CASES_PER_OPERATION, default 150); `make fuzz` the long one
(at least 5,000 requests). The last test prints how many requests were sent and how many were
answered 5xx, per operation."""

from __future__ import annotations

import base64
import json
import os
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    ignored_auth,
    positive_data_acceptance,
    unsupported_method,
)

from local.aws.lambda_runtime import LambdaContext, load_handler
from local.aws.resources import LocalStack
from local.aws.template import REPO, http_api_routes
from local.fake_upstream import FakeUpstream
from local.stack.gateway_http import GatewayServer

# Hypothesis's max_examples per operation (an operation with few distinct inputs, such as
# GET /v1/usage, stops early), and the fewest requests the whole run must have sent.
CASES_PER_OPERATION = int(os.environ.get("FUZZ_CASES_PER_OPERATION", "150"))
MIN_CASES = int(os.environ.get("FUZZ_MIN_CASES", "500"))
cases_sent: list[str] = []
# Cases run and requests answered 5xx, by operation ("GET /sd/{kind}/v1/status/{job_id}").
operations_run: Counter[str] = Counter()
server_errors: Counter[str] = Counter()

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
        if answer.status >= 500:
            server_errors[current.get("operation", "?")] += 1
        start_response(f"{answer.status} -", answer.headers)
        return [answer.body]

    return app


def _served_document() -> dict[str, Any]:
    """The document the status function serves at /openapi.json, every route of both HTTP
    functions (no AWS call is needed)."""
    load_handler(REPO / "functions" / "job_status")
    documented = sys.modules["functions.job_status.app"].documented_app()
    from imagegateway.entrypoints.http.resolver import openapi_document

    document: dict[str, Any] = json.loads(documented.get_openapi_json_schema(**openapi_document()))
    return document


current: dict[str, Any] = {}


def gateway_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    return current["app"](environ, start_response)


schema = schemathesis.openapi.from_dict(_served_document())
schema.app = gateway_app

# Values a JSON Schema does not lead schemathesis to, which broke the gateway before (issue
# #20, 6/7): numbers past the double range, lone surrogates (sent as \ud800 escapes), deep
# nesting. (NaN and Infinity cannot be sent: schemathesis writes JSON with allow_nan=False;
# tests/integration/test_hostile_inputs.py sends them.)
HOSTILE_VALUES: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from([10**400, -(10**400), 10**40, 2**64, 1e308, -0.0]),
    st.sampled_from(["\ud800", "a\udfffb", "\udc00" * 3]),
    st.integers(20, 200).map(lambda depth: json.loads("[" * depth + "]" * depth)),
    st.integers(min_value=-(10**400), max_value=10**400),
)
BODY_FIELDS = ["prompt", "model_id", "seed", "width", "guidance_scale", "strength", "lora_weights"]
BODY_FIELDS += ["clip_skip", "ip_adapter", "ip_adapter_scale", "controlnet_weights", "webhook"]


@schema.hook
def flatmap_body(context: Any, body: Any) -> st.SearchStrategy[Any]:
    """Now and then, one field of a generated body holds a hostile value (as do LoRA weights)."""
    if not isinstance(body, dict):
        return st.just(body)
    fields = st.sampled_from(sorted({*body, *BODY_FIELDS}))
    spoiled = st.builds(lambda key, value: {**body, key: value}, fields, HOSTILE_VALUES)
    loras = st.builds(
        lambda value: {**body, "lora_models": ["m"], "lora_weights": [value]}, HOSTILE_VALUES
    )
    return st.one_of(st.just(body), spoiled, loras)


def _cursor(data: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


LOCAL_CALLER = "arn:aws:iam::123456789012:user/local-developer"
EDITED_CURSORS = st.builds(
    lambda owner, job_id, created_at: _cursor(
        {"owner": owner, "key": {"job_id": job_id, "owner": owner, "created_at": created_at}}
    ),
    st.sampled_from([LOCAL_CALLER, "arn:aws:iam::123456789012:user/mallory"]),
    st.one_of(st.text(max_size=8), HOSTILE_VALUES),
    st.one_of(
        st.just("2026-01-01T00:00:00Z"),
        HOSTILE_VALUES,
        st.floats(allow_nan=False, allow_infinity=False),
    ),
)


@schema.hook
def flatmap_query(context: Any, query: Any) -> st.SearchStrategy[Any]:
    """GET /v1/jobs: now and then a cursor of the gateway's shape, edited."""
    if not isinstance(query, dict) or "cursor" not in query:
        return st.just(query)
    return st.one_of(st.just(query), EDITED_CURSORS.map(lambda cursor: {**query, "cursor": cursor}))


@pytest.fixture(autouse=True)
def gateway_over(stack: LocalStack, upstream: FakeUpstream) -> Iterator[None]:
    current["app"] = wsgi_gateway(stack)
    yield
    current.clear()


# Every documented operation, by label. Parametrized by pytest itself rather than with
# schema.parametrize(): under pytest-xdist, schemathesis's own items share one node id and
# only one operation ran (the suite's `pytest -n 2` sent ~170 requests to one route).
OPERATIONS = {result.ok().label: result.ok() for result in schema.get_all_operations()}
# Three checks do not apply. API Gateway itself answers an undeclared method with 404, not
# 405 (and the local HTTP API does the same). Some rules span fields (one LoRA weight per
# model, a prompt that is not all blanks), which JSON Schema cannot say, so a schema-valid body
# may rightly get a 422; invalid bodies must still be rejected. And authentication is API
# Gateway's (IAM, or the API-key authorizer), in front of the functions: this in-process
# mapping runs every request as the local default caller.
EXCLUDED_CHECKS = [unsupported_method, positive_data_acceptance, ignored_auth]


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_generated_requests_get_no_5xx_and_documented_answers(label: str) -> None:
    operation = OPERATIONS[label]
    cases = st.one_of(operation.as_strategy(mode) for mode in GenerationMode)

    @settings(
        max_examples=CASES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def call(case: Any) -> None:
        operations_run[label] += 1
        current["operation"] = label
        case.call_and_validate(excluded_checks=EXCLUDED_CHECKS)

    call()


def test_every_route_was_fuzzed_enough_and_none_answered_5xx(
    gateway_over: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # Runs after the generated tests in this module (pytest keeps file order). The figures
    # are printed past pytest's capture: `make fuzz` and `make test` show them.
    with capsys.disabled():
        print(f"\nschemathesis sent {len(cases_sent)} requests, {sum(server_errors.values())} 5xx")
        for operation, count in sorted(operations_run.items()):
            print(f"  {count:6d} cases  {operation}")
        for operation, count in sorted(server_errors.items()):
            print(f"  {count:6d} 5xx    {operation}")
    assert len(cases_sent) >= MIN_CASES, len(cases_sent)
    assert not server_errors, dict(server_errors)
    for kind in ("text2image", "image2image", "inpainting", "controlnet"):
        assert operations_run[f"POST /sd/{kind}/v1"], f"POST /sd/{kind}/v1 was never fuzzed"
