"""No input is a 5xx (issue #20, finding 6/7): bodies, query parameters, headers, path
parameters and list cursors a caller can edit, through the real HTTP handlers on moto. Each
gets a 4xx in the contract's shape naming what is wrong, and nothing reaches the upstream:
malformed JSON (deep nesting, numbers no field can hold, non-JSON literals, duplicate keys,
text that is not Unicode) is a 400; a well-formed but invalid value a 422."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from local.aws.resources import LocalStack
from local.fake_upstream import FakeUpstream
from tests.support.events import http_event_with_body, load_event
from tests.support.stack import invoke, response_body, submit_job, table_rows

VALID = '{"model_id": "sd1.5", "prompt": "a fox"'
HUGE = "9" * 400
# Past Python's int-from-text limit (4300 digits), still far under the 32 KiB body cap.
HUGER = "9" * 5000
NUMBER_FIELDS = [
    "width",
    "height",
    "seed",
    "samples",
    "num_inference_steps",
    "guidance_scale",
    "strength",
]
CALLER = "arn:aws:sts::123456789012:assumed-role/client/alice"


def assert_refused(response: dict[str, Any], status: int, field: str | None = None) -> None:
    """The contract's error shape, a one-line `error` and, when given, a detail naming
    `field`."""
    assert response["statusCode"] == status, response["body"]
    body = response_body(response)
    assert body["status"] == "FAILURE"
    assert body["error"]
    assert "\n" not in body["error"]
    assert isinstance(body["details"], list)
    for detail in body["details"]:
        assert set(detail) == {"field", "message"}
    if field is not None:
        assert field in [detail["field"] for detail in body["details"]], body


def submit_raw(stack: LocalStack, raw: str, path: str = "/sd/text2image/v1") -> Any:
    event = http_event_with_body(None, raw=raw)
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["routeKey"] = event["requestContext"]["routeKey"] = f"POST {path}"
    return invoke(stack, "submit", event)


def deep(depth: int) -> str:
    """A ~10 KB body holding an array nested `depth` deep in a field."""
    return VALID + ', "embeddings": ' + "[" * depth + "]" * depth + "}"


# --- bodies -------------------------------------------------------------------------------------


def test_a_400_digit_lora_weight_is_a_400(stack: LocalStack, upstream: FakeUpstream) -> None:
    # Given a LoRA weight no number type can hold
    raw = VALID + f', "lora_models": ["m"], "lora_weights": [{HUGE}]}}'
    # When it is submitted
    response = submit_raw(stack, raw)
    # Then it is a 400 naming the field, and nothing is recorded or sent
    assert_refused(response, 400, "lora_weights[0]")
    assert table_rows(stack) == []
    assert upstream.stats()["submits"] == 0


@pytest.mark.parametrize("field", NUMBER_FIELDS)
@pytest.mark.parametrize("digits", [HUGE, "-" + HUGE, HUGER])
def test_a_huge_integer_in_any_number_field_is_a_400(
    stack: LocalStack, upstream: FakeUpstream, field: str, digits: str
) -> None:
    response = submit_raw(stack, VALID + f', "{field}": {digits}}}')
    assert_refused(response, 400, field)
    assert upstream.stats()["submits"] == 0


@pytest.mark.parametrize("literal", ["1e400", "-1e400", "NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("field", ["guidance_scale", "strength", "seed"])
def test_non_finite_numbers_are_a_400(
    stack: LocalStack, upstream: FakeUpstream, literal: str, field: str
) -> None:
    response = submit_raw(stack, VALID + f', "{field}": {literal}}}')
    assert_refused(response, 400, field)


@pytest.mark.parametrize("depth", [5000, 100])
def test_json_nested_too_deep_is_a_400(
    stack: LocalStack, upstream: FakeUpstream, depth: int
) -> None:
    # Given a body of about 10 KB whose `embeddings` nest `depth` arrays
    raw = deep(depth)
    assert len(raw) < 32 * 1024
    # When it is submitted, then it is a 400 (not a RecursionError)
    assert_refused(submit_raw(stack, raw), 400)
    assert upstream.stats()["submits"] == 0


def test_a_body_that_is_only_nesting_is_a_400(stack: LocalStack, upstream: FakeUpstream) -> None:
    assert_refused(submit_raw(stack, "[" * 10_000 + "]" * 10_000), 400)


def test_a_duplicate_key_is_a_400_naming_it(stack: LocalStack, upstream: FakeUpstream) -> None:
    # Given a body that says two prompts (parsers disagree on which one counts)
    raw = '{"model_id": "sd1.5", "prompt": "a fox", "prompt": "a wolf"}'
    # Then it is refused, not read as either
    assert_refused(submit_raw(stack, raw), 400, "prompt")
    assert upstream.stats()["submits"] == 0


@pytest.mark.parametrize("field", ["prompt", "negative_prompt", "model_id"])
@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "a\\udc00b"])
def test_a_lone_surrogate_in_a_string_is_a_400_naming_it(
    stack: LocalStack, upstream: FakeUpstream, field: str, escape: str
) -> None:
    body = {"model_id": "sd1.5", "prompt": "a fox"}
    raw = json.dumps(body)[:-1] + f', "{field}": "{escape}"}}'
    if field in body:
        raw = json.dumps({k: v for k, v in body.items() if k != field})[:-1]
        raw += f', "{field}": "{escape}"}}'
    response = submit_raw(stack, raw)
    assert_refused(response, 400, field)
    assert table_rows(stack) == []


@pytest.mark.parametrize("kind", ["image2image", "inpainting"])
def test_a_lone_surrogate_in_an_image_url_is_a_400(
    stack: LocalStack, upstream: FakeUpstream, kind: str
) -> None:
    raw = '{"model_id": "sd1.5", "prompt": "a fox", "init_image": "https://example.com/\\ud83d.png"'
    raw += ', "mask_image": "https://example.com/m.png"}' if kind == "inpainting" else "}"
    assert_refused(submit_raw(stack, raw, f"/sd/{kind}/v1"), 400, "init_image")


def test_a_lone_surrogate_in_a_key_is_a_400(stack: LocalStack, upstream: FakeUpstream) -> None:
    assert_refused(submit_raw(stack, VALID + ', "\\ud800": 1}'), 400)


def test_a_surrogate_pair_is_ordinary_text(stack: LocalStack, upstream: FakeUpstream) -> None:
    # A pair of escapes is one character (here U+1F98A): valid JSON, valid text.
    response = submit_raw(stack, '{"model_id": "sd1.5", "prompt": "a \\ud83e\\udd8a"}')
    assert response["statusCode"] == 202, response["body"]


# --- query parameters, headers and path parameters ----------------------------------------------


def test_a_lone_surrogate_in_the_webhook_url_query_is_a_4xx(
    stack: LocalStack, upstream: FakeUpstream
) -> None:
    event = load_event("submit")
    event["queryStringParameters"] = {"webhook_url": "https://example.com/\ud800"}
    event["rawQueryString"] = "webhook_url=https://example.com/%ED%A0%80"
    assert_refused(invoke(stack, "submit", event), 400, "webhook_url")
    assert upstream.stats()["submits"] == 0


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("idempotency-key", "key-\ud800"),
        ("prefer", "wait=\ud800"),
        ("cache-control", "no-cache\udfff"),
        ("api-key", "igw_\ud800"),
    ],
)
def test_a_lone_surrogate_in_a_header_is_a_4xx(
    stack: LocalStack, upstream: FakeUpstream, header: str, value: str
) -> None:
    event = load_event("submit")
    event["headers"][header] = value
    response = invoke(stack, "submit", event)
    assert_refused(response, 400, header)
    assert upstream.stats()["submits"] == 0


def test_an_api_key_with_a_lone_surrogate_is_denied(stack: LocalStack) -> None:
    # The authorizer, before any route: a deny (API Gateway's 403), not an error (its 500).
    event = {"headers": {"api-key": "igw_\ud800"}, "requestContext": {}}
    assert invoke(stack, "authorizer", event) == {"isAuthorized": False}


def status_event_for(job_id: str) -> dict[str, Any]:
    event = load_event("job_status")
    event["rawPath"] = event["requestContext"]["http"]["path"] = (
        f"/sd/text2image/v1/status/{job_id}"
    )
    event["pathParameters"] = {"kind": "text2image", "job_id": job_id}
    return event


@pytest.mark.parametrize("job_id", ["\ud800", "job-\udfff", "x" * 5000])
def test_an_unreadable_job_id_is_a_4xx(stack: LocalStack, job_id: str) -> None:
    response = invoke(stack, "job_status", status_event_for(job_id))
    assert 400 <= response["statusCode"] < 500, response["body"]
    assert response_body(response)["status"] == "FAILURE"


# --- list cursors -------------------------------------------------------------------------------


def list_event(**query: str) -> dict[str, Any]:
    event = load_event("job_status")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/v1/jobs"
    event["routeKey"] = event["requestContext"]["routeKey"] = "GET /v1/jobs"
    event.pop("pathParameters", None)
    event["queryStringParameters"] = query
    event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in query.items())
    return event


def cursor_of(data: Any, *, raw: bytes | None = None) -> str:
    text = raw if raw is not None else json.dumps(data).encode()
    return base64.urlsafe_b64encode(text).decode().rstrip("=")


def a_real_cursor(stack: LocalStack) -> str:
    for _ in range(3):
        submit_job(stack)
    response = invoke(stack, "job_status", list_event(limit="1"))
    assert response["statusCode"] == 200, response["body"]
    cursor: str = response_body(response)["next_cursor"]
    return cursor


def edited(cursor: str, edit: Any) -> str:
    data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    edit(data)
    return cursor_of(data)


def test_a_real_cursor_still_pages(stack: LocalStack, upstream: FakeUpstream) -> None:
    cursor = a_real_cursor(stack)
    response = invoke(stack, "job_status", list_event(limit="1", cursor=cursor))
    assert response["statusCode"] == 200, response["body"]
    assert len(response_body(response)["jobs"]) == 1


EDITS = {
    "its own owner": lambda d: d.update(owner="arn:aws:iam::123456789012:role/mallory"),
    "key owner": lambda d: d["key"].update(owner="arn:aws:iam::123456789012:role/mallory"),
    "fractional key": lambda d: d["key"].update(created_at=1.5),
    "40-digit key": lambda d: d["key"].update(job_id=10**40),
    "huge key": lambda d: d["key"].update(job_id=10**400),
    "float job id": lambda d: d["key"].update(job_id=0.1),
    "list key": lambda d: d["key"].update(created_at=[1, 2]),
    "extra key": lambda d: d["key"].update(status="PENDING"),
    "missing key": lambda d: d["key"].pop("created_at"),
    "null key": lambda d: d.update(key=None),
    "surrogate key": lambda d: d["key"].update(job_id="\ud800"),
    "long key": lambda d: d["key"].update(job_id="x" * 1000),
}


@pytest.mark.parametrize("name", list(EDITS))
def test_an_edited_cursor_is_a_400(stack: LocalStack, upstream: FakeUpstream, name: str) -> None:
    # Given a cursor the gateway handed out, edited by its caller
    cursor = edited(a_real_cursor(stack), EDITS[name])
    # When it is sent back, then it is refused as a cursor (not a DynamoDB error, a 500)
    response = invoke(stack, "job_status", list_event(cursor=cursor))
    assert_refused(response, 400, "cursor")


@pytest.mark.parametrize(
    "cursor",
    [
        cursor_of(None, raw=b"\xff\xfe\xfd"),
        cursor_of(None, raw=b"not json"),
        cursor_of(None, raw=b"[" * 1500),
        cursor_of(None, raw=b'{"owner": 1e400, "key": {}}'),
        cursor_of(None, raw=b'{"owner": NaN}'),
        cursor_of(None, raw=b'{"owner": "a", "owner": "b"}'),
        "%%%not-base64",
        "\ud800",
        "A",
    ],
)
def test_a_cursor_that_is_not_a_cursor_is_a_400(
    stack: LocalStack, upstream: FakeUpstream, cursor: str
) -> None:
    response = invoke(stack, "job_status", list_event(cursor=cursor))
    assert 400 <= response["statusCode"] < 500, response["body"]
    assert_refused(response, response["statusCode"])
