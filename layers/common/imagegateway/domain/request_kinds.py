"""The upstream's four SD 1.5 request bodies, one model per kind on the shared
`ImageRequest`, and the table that picks one for a kind."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from imagegateway.domain.base import JobKind
from imagegateway.domain.image_requests import (
    MAX_CONTROLNET_WEIGHT,
    MAX_CONTROLNETS,
    ControlStep,
    ImageRequest,
    ModelId,
)
from imagegateway.domain.image_urls import ImageUrl


class Text2ImageRequest(ImageRequest):
    """POST /sd/text2image/v1: an image from a prompt."""


class Image2ImageRequest(ImageRequest):
    """POST /sd/image2image/v1: text2image's body plus the picture to transform."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model_id": "sd1.5",
                    "prompt": "the same scene as an oil painting",
                    "init_image": "https://example.com/photos/lighthouse.png",
                    "strength": 0.6,
                    "scheduler": "UniPCMultistepScheduler",
                }
            ]
        }
    )

    init_image: ImageUrl = Field(
        description="A publicly reachable https URL of the picture to transform (the upstream "
        "fetches it); `strength` is the denoise applied to it."
    )


class InpaintingRequest(Image2ImageRequest):
    """POST /sd/inpainting/v1: image2image's body plus the mask of what to repaint."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model_id": "sd1.5",
                    "prompt": "a red door",
                    "init_image": "https://example.com/photos/house.png",
                    "mask_image": "https://example.com/photos/house-door-mask.png",
                }
            ]
        }
    )

    mask_image: ImageUrl = Field(
        description="A publicly reachable https URL of the mask: white is repainted, black kept."
    )


class ControlNetRequest(ImageRequest):
    """POST /sd/controlnet/v1: text2image's body plus one or more ControlNets, each with its
    conditioning image (two or more: multi-ControlNet). The per-ControlNet lists agree in length
    when given; an empty one means the upstream's defaults."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model_id": "sd1.5",
                    "prompt": "a lighthouse on a cliff at dawn, photorealistic",
                    "controlnets": ["canny"],
                    "init_images": ["https://example.com/control/lighthouse-edges.png"],
                    "controlnet_weights": [0.5],
                    "starting_control_steps": [],
                    "ending_control_steps": [],
                    "safety_checker": False,
                }
            ]
        }
    )

    controlnets: Annotated[list[ModelId], Field(min_length=1, max_length=MAX_CONTROLNETS)] = Field(
        description='ControlNet names, e.g. ["canny"], ["canny", "openpose"].'
    )
    init_images: Annotated[list[ImageUrl], Field(min_length=1, max_length=MAX_CONTROLNETS)] = Field(
        description="One conditioning picture per ControlNet: https URLs the upstream fetches."
    )
    controlnet_weights: list[Annotated[float, Field(ge=0, le=MAX_CONTROLNET_WEIGHT)]] | None = (
        Field(default=None, description="One weight per ControlNet, e.g. [0.5].")
    )
    starting_control_steps: list[ControlStep] | None = Field(
        default=None,
        description="Per ControlNet, the fraction of the steps it starts at (0-1); may be [].",
    )
    ending_control_steps: list[ControlStep] | None = Field(
        default=None,
        description="Per ControlNet, the fraction of the steps it ends at (0-1, not before its "
        "start); may be [].",
    )

    @field_validator(
        "init_images", "controlnet_weights", "starting_control_steps", "ending_control_steps"
    )
    @classmethod
    def _one_per_controlnet(cls, value: list[Any] | None, info: ValidationInfo) -> list[Any] | None:
        controlnets = info.data.get("controlnets")
        if value and controlnets is not None and len(value) != len(controlnets):
            raise PydanticCustomError(
                "controlnet_count_mismatch",
                "has {got} items for {expected} controlnets; give one per ControlNet",
                {"got": len(value), "expected": len(controlnets)},
            )
        starts = info.data.get("starting_control_steps")
        if info.field_name == "ending_control_steps" and value and starts:
            for index, (start, end) in enumerate(zip(starts, value, strict=False)):
                if end < start:
                    raise PydanticCustomError(
                        "control_step_order",
                        "item {index} ends ({end}) before it starts ({start})",
                        {"index": index, "end": end, "start": start},
                    )
        return value


REQUEST_MODELS: dict[JobKind, type[ImageRequest]] = {
    JobKind.TEXT2IMAGE: Text2ImageRequest,
    JobKind.IMAGE2IMAGE: Image2ImageRequest,
    JobKind.INPAINTING: InpaintingRequest,
    JobKind.CONTROLNET: ControlNetRequest,
}
