"""The four kinds' request bodies: one base, image2image and inpainting add their image URLs,
controlnet its ControlNets (tests/unit/domain/test_sd15_surface.py)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from imagegateway.domain.base import JobKind
from imagegateway.domain.request_kinds import (
    REQUEST_MODELS,
    ControlNetRequest,
    Image2ImageRequest,
    InpaintingRequest,
    Text2ImageRequest,
)

BASE: dict[str, Any] = {"model_id": "sd1.5", "prompt": "a red door"}
INIT = "https://images.example.com/house.png"
MASK = "https://images.example.com/house-mask.png"


def fields_failing(model: type[Any], body: dict[str, Any]) -> set[str]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    return {".".join(str(part) for part in error["loc"]) for error in caught.value.errors()}


def test_every_kind_has_its_model_on_one_base() -> None:
    assert {
        JobKind.TEXT2IMAGE: Text2ImageRequest,
        JobKind.IMAGE2IMAGE: Image2ImageRequest,
        JobKind.INPAINTING: InpaintingRequest,
        JobKind.CONTROLNET: ControlNetRequest,
    } == REQUEST_MODELS
    # The base's ranges hold for every kind
    for model in REQUEST_MODELS.values():
        body = {**BASE, "init_image": INIT, "mask_image": MASK, "samples": 5}
        body |= {"controlnets": ["canny"], "init_images": [INIT]}
        assert "samples" in fields_failing(model, body)


def test_image2image_needs_init_image_and_forwards_it_with_the_scheduler() -> None:
    assert fields_failing(Image2ImageRequest, BASE) == {"init_image"}
    body = {**BASE, "init_image": INIT, "scheduler": "UniPCMultistepScheduler", "strength": 0.6}
    assert Image2ImageRequest.model_validate(body).upstream_body() == body


def test_inpainting_needs_both_images() -> None:
    assert fields_failing(InpaintingRequest, BASE) == {"init_image", "mask_image"}
    assert fields_failing(InpaintingRequest, {**BASE, "init_image": INIT}) == {"mask_image"}
    body = {**BASE, "init_image": INIT, "mask_image": MASK}
    assert InpaintingRequest.model_validate(body).upstream_body() == body


def test_text2image_refuses_the_other_kinds_fields() -> None:
    assert fields_failing(Text2ImageRequest, {**BASE, "init_image": INIT}) == {"init_image"}
    assert fields_failing(Image2ImageRequest, {**BASE, "init_image": INIT, "mask_image": MASK}) == {
        "mask_image"
    }


@pytest.mark.parametrize(
    "url",
    [
        "http://images.example.com/a.png",  # not https (deployed)
        "images.example.com/a.png",  # not absolute
        "/a.png",
        "https://user:secret@images.example.com/a.png",  # credentials
        "https://token@images.example.com/a.png",
        "https://evil.example\\@images.example.com/a.png",  # read differently by parsers
        "https://images.example.com/a b.png",  # whitespace
        "https://images.example.com:99999/a.png",  # no such port
        "https:///a.png",  # no host
        "https://images.example.com/" + "a" * 2100,  # too long
        "ftp://images.example.com/a.png",
    ],
)
def test_a_malformed_image_url_is_refused_naming_its_field(url: str) -> None:
    assert fields_failing(Image2ImageRequest, {**BASE, "init_image": url}) == {"init_image"}
    body = {**BASE, "init_image": INIT, "mask_image": url}
    assert fields_failing(InpaintingRequest, body) == {"mask_image"}


def test_locally_the_fake_upstreams_http_urls_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOW_INSECURE_DOWNLOADS", "true")
    body = {**BASE, "init_image": "http://127.0.0.1:8081/images/x/0.png"}
    assert Image2ImageRequest.model_validate(body).init_image.startswith("http://")


@pytest.mark.parametrize("scheduler", ["", "Euler a", "x" * 65, "1Scheduler", "DPM++"])
def test_a_scheduler_is_a_plain_name(scheduler: str) -> None:
    body = {**BASE, "init_image": INIT, "scheduler": scheduler}
    assert fields_failing(Image2ImageRequest, body) == {"scheduler"}


def test_kinds_know_their_upstream_routes() -> None:
    assert JobKind.INPAINTING.submit_path == "/sd/inpainting/v1"
    assert JobKind.IMAGE2IMAGE.status_path("42") == "/sd/image2image/v1/status/42"
