"""The request contract: every upstream field, both sides of every bound."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from imagegateway.domain.image_requests import samples_of
from imagegateway.domain.request_kinds import Text2ImageRequest
from tests.support.events import load_event

VALID: dict[str, Any] = {"model_id": "sd1.5", "prompt": "a red fox in the snow"}


def errors_for(body: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as caught:
        Text2ImageRequest.model_validate(body)
    return list(caught.value.errors())


def fields_in(errors: list[dict[str, Any]]) -> set[str]:
    return {str(error["loc"][0]) for error in errors}


def test_the_upstream_pages_own_example_is_accepted() -> None:
    # Given the example body from the upstream's documentation
    body = load_event("text2image_request")
    # When it is validated
    request = Text2ImageRequest.model_validate(body)
    # Then every field survives unchanged on its way upstream
    assert request.upstream_body() == body


@pytest.mark.parametrize(
    ("field", "low", "high", "below", "above"),
    [
        ("num_inference_steps", 1, 100, 0, 101),
        ("strength", 0, 1, -0.01, 1.01),
        ("samples", 1, 4, 0, 5),
        ("guidance_scale", 1, 20, 0.99, 20.01),
        ("width", 64, 1536, 56, 1544),
        ("height", 64, 1536, 56, 1544),
        ("seed", 0, 2**32 - 1, -2, 2**32),
    ],
)
def test_numeric_bounds_hold_on_both_sides(
    field: str, low: float, high: float, below: float, above: float
) -> None:
    # Given values on and just outside each bound
    # When they are validated
    # Then the bounds themselves pass and one step outside fails, naming the field
    assert getattr(Text2ImageRequest.model_validate({**VALID, field: low}), field) == low
    assert getattr(Text2ImageRequest.model_validate({**VALID, field: high}), field) == high
    assert fields_in(errors_for({**VALID, field: below})) == {field}
    assert fields_in(errors_for({**VALID, field: above})) == {field}


def test_image_sides_must_be_multiples_of_eight() -> None:
    assert fields_in(errors_for({**VALID, "width": 500})) == {"width"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("num_inference_steps", "20"),
        ("num_inference_steps", 20.5),
        ("samples", True),
        ("safety_checker", "yes"),
        ("refiner", 1),
        ("guidance_scale", "7.5"),
        ("seed", 1.5),
        ("prompt", 42),
        ("lora_models", "not-a-list"),
    ],
)
def test_wrong_types_are_refused_not_coerced(field: str, value: Any) -> None:
    assert fields_in(errors_for({**VALID, field: value})) == {field}


@pytest.mark.parametrize("field", ["model_id", "prompt"])
def test_required_fields(field: str) -> None:
    body = dict(VALID)
    del body[field]
    assert fields_in(errors_for(body)) == {field}


@pytest.mark.parametrize("prompt", ["", "   ", "x" * 2001])
def test_prompt_must_be_non_blank_and_bounded(prompt: str) -> None:
    assert fields_in(errors_for({**VALID, "prompt": prompt})) == {"prompt"}


def test_model_id_has_no_whitespace() -> None:
    assert fields_in(errors_for({**VALID, "model_id": "sd 1.5"})) == {"model_id"}


def test_unknown_fields_are_rejected_by_name() -> None:
    # Given a body with a typo'd field
    errors = errors_for({**VALID, "num_inference_step": 20})
    # Then the error names the unknown field
    assert fields_in(errors) == {"num_inference_step"}
    assert errors[0]["type"] == "extra_forbidden"


def test_lora_weights_must_match_lora_models_in_number() -> None:
    errors = errors_for({**VALID, "lora_models": ["a", "b"], "lora_weights": ["0.5"]})
    assert fields_in(errors) == {"lora_weights"}
    assert "1 weights for 2 lora_models" in errors[0]["msg"]


def test_lora_models_need_weights() -> None:
    assert fields_in(errors_for({**VALID, "lora_models": ["a"]})) == {"lora_weights"}


def test_lora_weights_need_models() -> None:
    assert fields_in(errors_for({**VALID, "lora_weights": ["0.5"]})) == {"lora_weights"}


@pytest.mark.parametrize("weight", ["abc", "nan", "inf", "2.01", "-2.01", ""])
def test_lora_weights_are_finite_numbers_in_range(weight: str) -> None:
    errors = errors_for({**VALID, "lora_models": ["a"], "lora_weights": [weight]})
    assert fields_in(errors) == {"lora_weights"}


def test_lora_weights_are_forwarded_as_sent_numbers_or_strings() -> None:
    # The seed page sends strings, the family's page numbers: the upstream takes both
    weights = [0.9, 1, "0.5"]
    request = Text2ImageRequest.model_validate(
        {**VALID, "lora_models": ["a", "b", "c"], "lora_weights": weights}
    )
    assert request.upstream_body()["lora_weights"] == weights


def test_too_many_loras_are_refused() -> None:
    body = {**VALID, "lora_models": list("abcdef"), "lora_weights": ["0.5"] * 6}
    assert "lora_models" in fields_in(errors_for(body))


def test_embeddings_are_a_list_of_ids() -> None:
    request = Text2ImageRequest.model_validate({**VALID, "embeddings": ["emb-1"]})
    assert request.upstream_body()["embeddings"] == ["emb-1"]
    assert fields_in(errors_for({**VALID, "embeddings": [""]})) == {"embeddings"}


def test_only_fields_the_caller_set_are_sent_upstream() -> None:
    request = Text2ImageRequest.model_validate({**VALID, "samples": 2})
    assert request.upstream_body() == {**VALID, "samples": 2}
    assert samples_of(request.upstream_body()) == 2
    assert samples_of(Text2ImageRequest.model_validate(VALID).upstream_body()) == 1


# --- liberal where the upstream would accept and the meaning is clear -------------------------


def test_an_empty_negative_prompt_means_none_and_is_not_forwarded() -> None:
    for blank in ("", "   "):
        request = Text2ImageRequest.model_validate({**VALID, "negative_prompt": blank})
        assert "negative_prompt" not in request.upstream_body()


def test_seed_minus_one_means_random_and_is_not_forwarded() -> None:
    request = Text2ImageRequest.model_validate({**VALID, "seed": -1})
    assert "seed" not in request.upstream_body()


@pytest.mark.parametrize("field", ["num_inference_steps", "samples", "width", "height", "seed"])
def test_whole_numbers_written_as_floats_are_integers(field: str) -> None:
    # JSON has one number type: 20.0 is the integer 20 (and is forwarded as 20)
    value = {"num_inference_steps": 20.0, "samples": 2.0, "width": 512.0, "height": 512.0}.get(
        field, 7.0
    )
    request = Text2ImageRequest.model_validate({**VALID, field: value})
    forwarded = request.upstream_body()[field]
    assert forwarded == int(value)
    assert isinstance(forwarded, int)


def test_explicit_nulls_are_not_forwarded_as_null() -> None:
    body = {**VALID, "negative_prompt": None, "seed": None, "samples": None, "lora_models": None}
    assert Text2ImageRequest.model_validate(body).upstream_body() == VALID
