"""Property tests of request parsing on arbitrary JSON (issue #20, finding 6/7): whatever a
caller sends, with huge integers, non-finite floats, lone surrogates, deep nesting and keys
said twice, the only outcomes are a value the rest of the gateway can carry (UTF-8-encodable,
bounded) or the gateway's own refusal: UnreadableInputError (a 400), a pydantic
ValidationError (a 422) or, on the queue, InvalidRequestError (a Failed event). Never
another exception, which would be a 500 or a message retried until its dead-letter queue."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from imagegateway.domain.base import JobKind
from imagegateway.domain.errors import InvalidRequestError, UnreadableInputError
from imagegateway.domain.json_text import MAX_DEPTH, read_json
from imagegateway.domain.request_kinds import REQUEST_MODELS
from imagegateway.entrypoints.request_queue import read_request

# Every code point, lone surrogates included (hypothesis leaves category Cs out by default).
any_text = st.text(st.characters(exclude_categories=()), max_size=12)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.sampled_from([10**308, 2**1024, -(10**400), 10**40, 2**32, -1, 0]),
    st.floats(),  # NaN and the infinities included
    st.sampled_from([1e308, -0.0, 5e-324, float("inf"), float("nan")]),
)
scalars = st.none() | st.booleans() | numbers | any_text
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=24,
)
FIELD_NAMES = sorted({name for model in REQUEST_MODELS.values() for name in model.model_fields})
# A request body: mostly the models' own field names (so validators run), with anything in them.
bodies = st.dictionaries(st.sampled_from(FIELD_NAMES) | any_text, json_values, max_size=10)


def nested(value: Any, depth: int) -> Any:
    for _ in range(depth):
        value = [value]
    return value


def as_text(value: Any, *, ascii_only: bool) -> str:
    """JSON text as a caller might write it: escapes or raw characters, NaN literals allowed,
    and numbers past the int-to-text limit written out by hand."""
    try:
        return json.dumps(value, ensure_ascii=ascii_only)
    except ValueError:  # an int past Python's 4300-digit text limit
        return json.dumps(str(value)).strip('"')


texts = st.one_of(
    st.builds(as_text, json_values, ascii_only=st.booleans()),
    st.builds(as_text, bodies, ascii_only=st.booleans()),
    st.builds(
        lambda body, depth: as_text({**body, "embeddings": nested([], depth)}, ascii_only=True),
        bodies,
        st.integers(MAX_DEPTH - 2, MAX_DEPTH + 3),
    ),
    st.integers(900, 6000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(300, 6000).map(lambda digits: '{"seed": ' + "9" * digits + "}"),
    st.text(max_size=40),
)


def outcome(read: Callable[[], Any], *refusals: type[Exception]) -> Any:
    """What `read` returns, or the refusal it raised (any other exception fails the test)."""
    try:
        return read()
    except refusals as refused:
        return refused


def assert_carriable(value: Any) -> None:
    """What the gateway passes on: JSON that encodes to UTF-8 (boto3, the upstream) and reads
    back the same."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    assert json.loads(text.encode("utf-8")) == value


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
def test_any_text_is_a_json_value_or_unreadable(text: str) -> None:
    value = outcome(lambda: read_json(text), UnreadableInputError)
    if isinstance(value, UnreadableInputError):
        assert value.message
        assert "\n" not in value.message
        assert value.details
    else:
        assert_carriable(value)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(list(REQUEST_MODELS)), bodies)
# The finding's own case, which random bodies rarely reach: an OverflowError before.
@example(JobKind.TEXT2IMAGE, {"lora_models": ["m"], "lora_weights": [10**400]})
@example(JobKind.IMAGE2IMAGE, {"lora_weights": [-(10**400), 1e308, float("inf")]})
def test_any_json_body_is_a_request_or_a_validation_error(kind: JobKind, body: Any) -> None:
    # The models themselves, given values read_json would refuse too (a Python caller):
    # a model, or a ValidationError naming where, never OverflowError or another exception.
    request = outcome(lambda: REQUEST_MODELS[kind].model_validate(body), ValidationError)
    if isinstance(request, ValidationError):
        assert request.errors()
        return
    # Accepted bodies (rare at random) carry nothing unreadable upstream.
    assert_carriable(request.upstream_body())


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(list(REQUEST_MODELS)), texts)
def test_any_http_body_text_is_a_request_a_400_or_a_422(kind: JobKind, text: str) -> None:
    # The submit route's own path: read_json (the resolver's deserializer), then the model.
    try:
        body = read_json(text)
        request = REQUEST_MODELS[kind].model_validate(body)
    except (UnreadableInputError, ValidationError):
        return
    assert_carriable(request.upstream_body())


envelopes = st.fixed_dictionaries(
    {"request": bodies},
    optional={
        "kind": st.sampled_from([*JobKind, "outpainting"]) | json_values,
        "reference": any_text | json_values,
        "idempotency_key": any_text | numbers,
        "task_token": any_text,
        "webhook_url": st.just("https://example.com/hook") | any_text,
        "cache": json_values,
    },
)
messages = st.one_of(
    texts,
    st.builds(as_text, envelopes, ascii_only=st.booleans()),
    st.builds(
        lambda envelope, ascii_only: as_text(
            {"detail-type": "Image Generation Requested", "id": "e-1", "detail": envelope},
            ascii_only=ascii_only,
        ),
        envelopes,
        st.booleans(),
    ),
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(messages)
def test_any_queue_message_is_read_or_an_invalid_request(message: str) -> None:
    read = outcome(lambda: read_request(message, "m-1"), InvalidRequestError)
    if isinstance(read, InvalidRequestError):
        assert read.code == "INVALID_REQUEST"
        assert read.details
        assert "\n" not in read.message
        return
    assert_carriable(read.body)
    assert_carriable(read.envelope.model_dump(mode="json"))
