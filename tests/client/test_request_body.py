"""The body `generate` and the CLI build is the upstream's, field for field: the gateway's own
request models (domain.image_requests) accept it and forward every field the client set."""

from __future__ import annotations

import pytest
from imagegateway_client import KINDS, ControlNet, parse_kind, request_body

from imagegateway.domain.base import JobKind
from imagegateway.domain.request_kinds import REQUEST_MODELS

IMAGES = {
    "text2image": {},
    "image2image": {"init_image": "https://example.com/a.png"},
    "inpainting": {
        "init_image": "https://example.com/a.png",
        "mask_image": "https://example.com/m.png",
    },
    "controlnet": {
        "controlnets": [
            ControlNet("canny", "https://example.com/edges.png", 0.5),
            ControlNet("openpose", "https://example.com/pose.png", 0.8),
        ]
    },
}


def test_the_clients_kinds_are_the_gateways() -> None:
    assert tuple(kind.value for kind in JobKind) == KINDS


@pytest.mark.parametrize("kind", KINDS)
def test_every_option_is_a_field_the_gateways_model_accepts_and_forwards(kind: str) -> None:
    body = request_body(
        prompt="a lighthouse",
        model_id="sd1.5",
        negative_prompt="blurry",
        steps=20,
        samples=2,
        width=512,
        height=384,
        seed=12345,
        loras=[("lora-a", 0.9), ("lora-b", "-1.5")],
        extra={"guidance_scale": 7.5, "safety_checker": True},
        **IMAGES[kind],
    )
    request = REQUEST_MODELS[JobKind(kind)].model_validate(body)
    assert request.upstream_body() == body
    assert body["lora_weights"] == ["0.9", "-1.5"]


def test_controlnets_become_the_upstreams_three_lists() -> None:
    nets = [ControlNet("canny", "https://e.com/a.png", 0.5), ControlNet("depth", "https://e.com/b")]
    with pytest.raises(ValueError, match="every ControlNet a weight, or none"):
        request_body(prompt="p", controlnets=nets)
    body = request_body(prompt="p", controlnets=[ControlNet("canny", "https://e.com/a.png")])
    assert body["controlnets"] == ["canny"]
    assert body["init_images"] == ["https://e.com/a.png"]
    assert "controlnet_weights" not in body


def test_only_the_fields_given_are_sent() -> None:
    assert request_body(prompt="a fox") == {"model_id": "sd1.5", "prompt": "a fox"}
    assert request_body(prompt="a fox", loras={}) == {"model_id": "sd1.5", "prompt": "a fox"}


def test_a_kind_is_read_case_insensitively_and_anything_else_is_refused() -> None:
    assert parse_kind(" Inpainting ") == "inpainting"
    with pytest.raises(ValueError, match="use one of text2image, image2image, inpainting"):
        parse_kind("img2img")
