"""Property tests of the request model: whatever arrives, the answer is a model or a
ValidationError naming fields; valid bodies reach the upstream unchanged."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from imagegateway.domain.image_requests import MAX_SEED
from imagegateway.domain.request_kinds import Text2ImageRequest

FIELDS = set(Text2ImageRequest.model_fields)
# Every one of these refuses negatives and anything from 2**33 up.
BOUNDED_INTEGERS = ["num_inference_steps", "samples", "seed", "width", "height"]
ids = st.text(
    st.characters(categories=["L", "N"], include_characters="-_.:/"), min_size=1, max_size=40
)
prompts = st.text(min_size=1, max_size=300).filter(lambda text: text.strip())
sides = st.integers(8, 128).map(lambda n: n * 8)


@st.composite
def valid_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {"model_id": draw(ids), "prompt": draw(prompts)}
    optional: dict[str, st.SearchStrategy[Any]] = {
        "negative_prompt": prompts,
        "num_inference_steps": st.integers(1, 100),
        "strength": st.floats(0, 1),
        "samples": st.integers(1, 4),
        "guidance_scale": st.floats(1, 20),
        "width": sides,
        "height": sides,
        "seed": st.integers(0, MAX_SEED),
        "safety_checker": st.booleans(),
        "refiner": st.booleans(),
        "embeddings": st.lists(ids, max_size=3),
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            body[name] = draw(strategy)
    loras = draw(st.lists(ids, max_size=5))
    if loras:
        body["lora_models"] = loras
        body["lora_weights"] = [
            format(draw(st.floats(-2, 2, allow_nan=False)), ".3f") for _ in loras
        ]
    return body


@settings(max_examples=150)
@given(valid_bodies())
def test_every_valid_body_is_accepted_and_forwarded_unchanged(body: dict[str, Any]) -> None:
    assert Text2ImageRequest.model_validate(body).upstream_body() == body


@settings(max_examples=150)
@given(
    st.sampled_from(BOUNDED_INTEGERS),
    st.one_of(st.integers(max_value=-2), st.integers(min_value=2**33)),
)
def test_out_of_range_numbers_name_their_field(field: str, value: int) -> None:
    with pytest.raises(ValidationError) as caught:
        Text2ImageRequest.model_validate({"model_id": "m", "prompt": "p", field: value})
    assert {error["loc"][0] for error in caught.value.errors()} == {field}


@given(st.text(min_size=1, max_size=30).filter(lambda key: key not in FIELDS))
def test_any_unknown_field_is_named(key: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Text2ImageRequest.model_validate({"model_id": "m", "prompt": "p", key: 1})
    assert [error["loc"][0] for error in caught.value.errors()] == [key]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150)
@given(st.dictionaries(st.sampled_from(sorted(FIELDS)), json_values, max_size=8))
def test_arbitrary_json_is_a_model_or_a_validation_error_never_a_crash(
    body: dict[str, Any],
) -> None:
    try:
        Text2ImageRequest.model_validate(body)
    except ValidationError as exc:
        errors = exc.errors()
    else:
        return
    assert all(error["loc"] for error in errors)
