"""The upstream's request bodies per kind, with its ranges, and its answers."""

from __future__ import annotations

import math
import os
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from imagegateway.domain.base import GatewayModel, JobKind, JobStatus

# Bounds the upstream page leaves open, chosen so that a request we accept is one SD 1.5 can run
# (documented in the README's request table).
MAX_PROMPT_CHARS = 2000
MIN_SIDE, MAX_SIDE, SIDE_STEP = 64, 1024, 8
MAX_SEED = 2**32 - 1
MAX_SAMPLES = 4
# The usual "random seed" of SD clients: accepted, and not forwarded (the upstream then picks).
RANDOM_SEED = -1


def samples_of(body: dict[str, Any]) -> int:
    """How many images an upstream request body asks for (the upstream's default is 1)."""
    samples = body.get("samples", 1)
    return samples if isinstance(samples, int) and 1 <= samples <= MAX_SAMPLES else 1


# Integer fields: JSON has one number type, so 20.0 is read as 20 (20.5 is refused).
INTEGER_FIELDS = ("num_inference_steps", "samples", "width", "height", "seed")
MAX_LORAS = 5
MIN_LORA_WEIGHT, MAX_LORA_WEIGHT = -2.0, 2.0
MAX_EMBEDDINGS = 8

ModelId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^\S+$")]
Prompt = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PROMPT_CHARS)]
ImageSide = Annotated[int, Field(ge=MIN_SIDE, le=MAX_SIDE, multiple_of=SIDE_STEP)]


MAX_IMAGE_URL_CHARS = 2048
SCHEDULER_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"
# Locally the fake upstream serves http on 127.0.0.1; this is the store step's own switch.
INSECURE_URLS_VARIABLE = "ALLOW_INSECURE_DOWNLOADS"


def _insecure_urls_allowed() -> bool:
    return os.environ.get(INSECURE_URLS_VARIABLE, "").strip().lower() == "true"


def _checked_image_url(value: str) -> str:
    """An image URL the upstream fetches itself: checked for shape before a paid call."""
    if len(value) > MAX_IMAGE_URL_CHARS:
        raise PydanticCustomError(
            "url_too_long", "must be at most {limit} characters", {"limit": MAX_IMAGE_URL_CHARS}
        )
    if any(char.isspace() or ord(char) < 32 or char == "\\" for char in value):
        raise PydanticCustomError("url_characters", "must not contain spaces or backslashes")
    parts = urlsplit(value)
    schemes = ("https", "http") if _insecure_urls_allowed() else ("https",)
    if parts.scheme.lower() not in schemes or not parts.netloc:
        raise PydanticCustomError("url_scheme", "must be an absolute https URL")
    if "@" in parts.netloc or parts.username or parts.password:
        raise PydanticCustomError("url_credentials", "must not contain credentials")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if not parts.hostname or port == -1:
        raise PydanticCustomError("url_host", "must name a host")
    return value


ImageUrl = Annotated[str, AfterValidator(_checked_image_url)]


class ImageRequest(GatewayModel):
    """The fields the upstream's three kinds share: text2image's body, field for field, with the
    upstream page's ranges."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "model_id": "sd1.5",
                    "prompt": "a lighthouse on a cliff at dawn, photorealistic",
                    "num_inference_steps": 20,
                    "samples": 1,
                    "guidance_scale": 7.5,
                    "width": 512,
                    "height": 512,
                    "seed": 12345,
                }
            ]
        },
    )

    @model_validator(mode="before")
    @classmethod
    def _whole_numbers_as_integers(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            for name in INTEGER_FIELDS:
                value = data.get(name)
                if isinstance(value, float) and value.is_integer():
                    data[name] = int(value)
        return data

    model_id: ModelId = Field(description="An SD 1.5 model id from the upstream's models page.")
    prompt: Prompt = Field(description="The prompt; the upstream reads its first 75 tokens.")
    negative_prompt: Annotated[str, StringConstraints(max_length=MAX_PROMPT_CHARS)] | None = Field(
        default=None, description="Empty or blank means none (not forwarded)."
    )
    num_inference_steps: Annotated[int, Field(ge=1, le=100)] | None = None
    strength: Annotated[float, Field(ge=0, le=1)] | None = None
    samples: Annotated[int, Field(ge=1, le=MAX_SAMPLES)] | None = None
    guidance_scale: Annotated[float, Field(ge=1, le=20)] | None = None
    width: ImageSide | None = None
    height: ImageSide | None = None
    seed: Annotated[int, Field(ge=RANDOM_SEED, le=MAX_SEED)] | None = Field(
        default=None, description="-1 (or absent) lets the upstream pick a random seed."
    )
    lora_models: Annotated[list[ModelId], Field(max_length=MAX_LORAS)] | None = None
    lora_weights: (
        Annotated[
            list[str],
            Field(
                max_length=MAX_LORAS,
                description=f"One per LoRA model, numbers as strings, in [{MIN_LORA_WEIGHT}, "
                f"{MAX_LORA_WEIGHT}].",
            ),
        ]
        | None
    ) = Field(default=None, validate_default=True)
    safety_checker: bool | None = None
    refiner: bool | None = None
    embeddings: Annotated[list[ModelId], Field(max_length=MAX_EMBEDDINGS)] | None = Field(
        default=None, description="Embedding model ids; name them in the prompt as well."
    )

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise PydanticCustomError("blank_string", "must not be blank")
        return value

    @field_validator("negative_prompt")
    @classmethod
    def _blank_means_none(cls, value: str | None) -> str | None:
        return value if value and value.strip() else None

    @field_validator("seed")
    @classmethod
    def _random_seed_means_none(cls, value: int | None) -> int | None:
        return None if value == RANDOM_SEED else value

    @field_validator("lora_weights", mode="before")
    @classmethod
    def _numbers_as_strings(cls, value: Any) -> Any:
        # The upstream wants strings; a JSON number is accepted and forwarded in string form.
        # An int as str(), not format(.., "g"): that makes a float of it first, an
        # OverflowError (a 500) for an int past the double range.
        if isinstance(value, list):
            return [
                str(item)
                if isinstance(item, int) and not isinstance(item, bool)
                else format(item, "g")
                if isinstance(item, float)
                else item
                for item in value
            ]
        return value

    @field_validator("lora_weights")
    @classmethod
    def _weights_match_models(
        cls, value: list[str] | None, info: ValidationInfo
    ) -> list[str] | None:
        models = info.data.get("lora_models")
        if value is None:
            if models:
                raise PydanticCustomError(
                    "lora_weights_missing", "required when lora_models is given (one per model)"
                )
            return None
        for index, weight in enumerate(value):
            try:
                number = float(weight)
            except ValueError:
                number = math.nan
            if math.isnan(number):  # "inf" or a 400-digit int is out of range, below
                raise PydanticCustomError(
                    "lora_weight_not_a_number",
                    "item {index} is not a number: '{weight}'",
                    {"index": index, "weight": weight},
                )
            if not MIN_LORA_WEIGHT <= number <= MAX_LORA_WEIGHT:
                raise PydanticCustomError(
                    "lora_weight_out_of_range",
                    "item {index} must be between {low} and {high}",
                    {"index": index, "low": MIN_LORA_WEIGHT, "high": MAX_LORA_WEIGHT},
                )
        expected = len(models or [])
        if len(value) != expected:
            raise PydanticCustomError(
                "lora_count_mismatch",
                "has {got} weights for {expected} lora_models; give one weight per model",
                {"got": len(value), "expected": expected},
            )
        return value

    def upstream_body(self) -> dict[str, Any]:
        """What the upstream receives: exactly the fields the caller set to a value, so its
        defaults apply (an explicit null, "" or a -1 seed is the same as leaving it out)."""
        return self.model_dump(mode="json", exclude_unset=True, exclude_none=True)


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
    scheduler: Annotated[str, StringConstraints(pattern=SCHEDULER_PATTERN)] | None = Field(
        default=None, description='A diffusers scheduler name, e.g. "UniPCMultistepScheduler".'
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


REQUEST_MODELS: dict[JobKind, type[ImageRequest]] = {
    JobKind.TEXT2IMAGE: Text2ImageRequest,
    JobKind.IMAGE2IMAGE: Image2ImageRequest,
    JobKind.INPAINTING: InpaintingRequest,
}


class UpstreamAnswer(GatewayModel):
    """An upstream SUCCESS / PENDING / FAILURE answer (submit or status)."""

    model_config = ConfigDict(extra="allow")

    status: JobStatus
    id: str | None = None
    download_urls: list[str] = Field(default_factory=list)
    error: str | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_string(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @field_validator("error", mode="before")
    @classmethod
    def _error_text(cls, value: Any) -> Any:
        return value if value is None or isinstance(value, str) else str(value)
