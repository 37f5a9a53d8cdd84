"""What the HTTP functions answer before any parsing: size, media type, encoding; and the
OpenAPI document they serve."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from openapi_spec_validator import validate

from local.aws.resources import LocalStack
from local.fake_upstream import FakeUpstream
from tests.support.events import http_event_with_body, load_event
from tests.support.stack import invoke, response_body, table_rows

VALID = {"model_id": "sd1.5", "prompt": "a fox"}


def test_a_body_over_the_cap_is_a_413(stack: LocalStack, upstream: FakeUpstream) -> None:
    # Given a body of 40 KiB
    event = http_event_with_body({**VALID, "negative_prompt": "x" * 40_000})
    # When it is submitted
    response = invoke(stack, "submit", event)
    # Then it is refused before validation, in the contract's shape
    assert response["statusCode"] == 413
    assert response_body(response)["status"] == "FAILURE"
    assert upstream.stats()["submits"] == 0


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "application/xml"],
)
def test_a_non_json_content_type_is_a_415(
    stack: LocalStack, upstream: FakeUpstream, content_type: str
) -> None:
    response = invoke(stack, "submit", http_event_with_body(VALID, content_type=content_type))
    assert response["statusCode"] == 415
    assert response_body(response)["status"] == "FAILURE"
    assert upstream.stats()["submits"] == 0


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "application/json;charset=UTF-8"]
)
def test_json_content_types_with_parameters_are_accepted(
    stack: LocalStack, upstream: FakeUpstream, content_type: str
) -> None:
    response = invoke(stack, "submit", http_event_with_body(VALID, content_type=content_type))
    assert response["statusCode"] == 202


def test_a_body_that_is_not_utf8_is_a_400(stack: LocalStack, upstream: FakeUpstream) -> None:
    event = load_event("submit")
    event["body"] = base64.b64encode(b'{"model_id": "\xff\xfe"}').decode()
    event["isBase64Encoded"] = True
    response = invoke(stack, "submit", event)
    assert response["statusCode"] == 400
    assert table_rows(stack) == []


@pytest.mark.parametrize("raw", ["[]", "42", '"text"', "null"])
def test_json_that_is_not_an_object_is_a_422(
    stack: LocalStack, upstream: FakeUpstream, raw: str
) -> None:
    response = invoke(stack, "submit", http_event_with_body(None, raw=raw))
    assert response["statusCode"] == 422
    assert response_body(response)["details"]


def schemas_required(document: dict[str, Any], name: str) -> set[str]:
    return set(document["components"]["schemas"][name].get("required", []))


def openapi_answer(stack: LocalStack) -> Any:
    """The status function's answer to GET /openapi.json."""
    event = load_event("job_status")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/openapi.json"
    event["routeKey"] = "GET /openapi.json"
    event.pop("pathParameters")
    return invoke(stack, "job_status", event)


def test_the_openapi_document_describes_every_route(
    stack: LocalStack, upstream: FakeUpstream
) -> None:
    # Given a GET of /openapi.json on the status function
    # When it answers
    response = openapi_answer(stack)
    document = json.loads(response["body"])
    # Then it is Powertools' OpenAPI document, with the request model and the error shapes
    assert response["statusCode"] == 200
    assert set(document["paths"]) == {
        "/sd/text2image/v1",
        "/sd/image2image/v1",
        "/sd/inpainting/v1",
        "/sd/controlnet/v1",
        "/sd/{kind}/v1/status/{job_id}",
        "/v1/jobs",
        "/v1/jobs/{job_id}/cancel",
        "/v1/usage",
        "/v1/webhooks/secret",
    }
    for kind in ("text2image", "image2image", "inpainting", "controlnet"):
        post = document["paths"][f"/sd/{kind}/v1"]["post"]
        assert {"202", "400", "413", "415", "422", "503"} <= set(post["responses"])
    assert "init_image" in schemas_required(document, "Image2ImageRequest")
    assert {"init_image", "mask_image"} <= schemas_required(document, "InpaintingRequest")
    status = document["paths"]["/sd/{kind}/v1/status/{job_id}"]["get"]
    assert {p["name"] for p in status["parameters"]} == {"kind", "job_id"}
    schemas = document["components"]["schemas"]
    assert schemas["Text2ImageRequest"]["additionalProperties"] is False
    assert schemas["Text2ImageRequest"]["properties"]["samples"]["anyOf"][0]["maximum"] == 4


# Every field of the upstream's SD 1.5 family (the shared reference, upstream-sd15-parameters.md).
FAMILY_FIELDS = {
    "model_id", "prompt", "negative_prompt", "num_inference_steps", "samples", "guidance_scale",
    "width", "height", "seed", "strength", "lora_models", "lora_weights", "safety_checker",
    "refiner", "scheduler", "hires", "embeddings", "ip_adapter", "ip_adapter_image",
    "ip_adapter_scale", "ip_adapter_style_images", "clip_skip", "upscale", "base64", "webhook",
    "server_id",
}  # fmt: skip
CONTROLNET_FIELDS = {
    "controlnets", "init_images", "controlnet_weights", "starting_control_steps",
    "ending_control_steps",
}  # fmt: skip


def test_the_openapi_document_lists_every_field_the_upstream_documents_on_every_kind(
    stack: LocalStack, upstream: FakeUpstream
) -> None:
    # Given the served document's request schemas
    schemas = json.loads(openapi_answer(stack)["body"])["components"]["schemas"]
    # Then every kind lists every field of the family, controlnet its own lists too
    for name in ("Text2ImageRequest", "Image2ImageRequest", "InpaintingRequest"):
        assert set(schemas[name]["properties"]) >= FAMILY_FIELDS, name
    controlnet = schemas["ControlNetRequest"]
    assert set(controlnet["properties"]) >= FAMILY_FIELDS | CONTROLNET_FIELDS
    assert {"controlnets", "init_images"} <= set(controlnet["required"])
    assert controlnet["additionalProperties"] is False


def test_the_openapi_document_is_a_valid_openapi_document(
    stack: LocalStack, upstream: FakeUpstream
) -> None:
    # Given the document the status function serves
    document = json.loads(openapi_answer(stack)["body"])
    # When an independent validator reads it / Then it holds to its OpenAPI version's schema
    validate(document)
    assert document["openapi"].startswith("3.")
