"""The request body every kind of the upstream's SD 1.5 family shares, with its ranges, and the
upstream's answers. The kinds' own models are in `request_kinds`."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from imagegateway.domain.base import GatewayModel, JobStatus
from imagegateway.domain.image_urls import ImageUrl

# Bounds the upstream page leaves open, chosen so that a request we accept is one SD 1.5 can run
# (documented in the README's request tables).
MAX_PROMPT_CHARS = 2000
# The family's page takes sides up to 1536; SD 1.5 works in 8-pixel latents.
MIN_SIDE, MAX_SIDE, SIDE_STEP = 64, 1536, 8
MAX_SEED = 2**32 - 1
MAX_SAMPLES = 4
# The usual "random seed" of SD clients: accepted, and not forwarded (the upstream then picks).
RANDOM_SEED = -1


def samples_of(body: dict[str, Any]) -> int:
    """How many images an upstream request body asks for (the upstream's default is 1)."""
    samples = body.get("samples", 1)
    return samples if isinstance(samples, int) and 1 <= samples <= MAX_SAMPLES else 1


# Integer fields: JSON has one number type, so 20.0 is read as 20 (20.5 is refused).
INTEGER_FIELDS = ("num_inference_steps", "samples", "width", "height", "seed", "clip_skip")
MAX_LORAS = 5
MIN_LORA_WEIGHT, MAX_LORA_WEIGHT = -2.0, 2.0
MAX_EMBEDDINGS = 8
MAX_CLIP_SKIP = 12  # the family's page
UPSCALE_2X = "2x"  # the one value the family's page documents
MAX_IP_ADAPTERS = 4
MAX_IP_ADAPTER_SCALE = 2.0
MAX_STYLE_IMAGES = 8
MAX_CONTROLNETS = 5
MAX_CONTROLNET_WEIGHT = 2.0

ModelId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^\S+$")]
Prompt = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PROMPT_CHARS)]
ImageSide = Annotated[int, Field(ge=MIN_SIDE, le=MAX_SIDE, multiple_of=SIDE_STEP)]
# A fraction of the denoising steps (diffusers' control_guidance_start / _end).
ControlStep = Annotated[float, Field(ge=0, le=1)]


SCHEDULER_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"


# Read by the gateway, never forwarded: a body `webhook` is the gateway's own signed webhook.
GATEWAY_FIELDS = frozenset({"webhook"})


def _as_number(weight: str | float) -> float:
    """A weight given as a JSON number or a numeric string: NaN when it is neither, infinite
    past the double range (a 400-digit int is out of range, not a crash)."""
    try:
        return float(weight)
    except ValueError:
        return math.nan
    except OverflowError:
        return math.inf


# IP-Adapter ids: no spaces, and none of the characters of the page's bracketed string form.
_ADAPTER_ID = re.compile(r"[^\s\[\],'\"]{1,128}")


def ip_adapter_ids(value: list[str] | str) -> list[str]:
    """The adapters `ip_adapter` names: a list of ids, or the page's string form,
    `"[ip-adapter-plus-face_sd15]"` (or `"[a, b]"`, or one bare id)."""
    if isinstance(value, list):
        return value
    text = value.strip()
    if text[:1] == "[" and text[-1:] == "]":
        text = text[1:-1]
    if not text.strip():
        return []
    return [item.strip().strip("'\"") for item in text.split(",")]


class ImageRequest(GatewayModel):
    """The fields every kind of the upstream's SD 1.5 family takes: text2image's body, field for
    field, and the family's pages' fields (Hi-res Fix, schedulers, IP-Adapters, `clip_skip`,
    `upscale`, `server_id`...), with their ranges. Forwarded as sent, but for `webhook`: the
    gateway's own."""

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
            list[str | int | float],
            Field(
                max_length=MAX_LORAS,
                description=f"One per LoRA model, in [{MIN_LORA_WEIGHT}, {MAX_LORA_WEIGHT}]: "
                'numbers, or numbers as strings ("0.9", as the upstream\'s seed page sends '
                "them); forwarded as sent.",
            ),
        ]
        | None
    ) = Field(default=None, validate_default=True)
    safety_checker: bool | None = None
    refiner: bool | None = None
    embeddings: Annotated[list[ModelId], Field(max_length=MAX_EMBEDDINGS)] | None = Field(
        default=None, description="Embedding model ids; name them in the prompt as well."
    )
    scheduler: Annotated[str, StringConstraints(pattern=SCHEDULER_PATTERN)] | None = Field(
        default=None,
        description='A diffusers scheduler name, e.g. "EulerDiscreteScheduler", '
        '"UniPCMultistepScheduler".',
    )
    hires: bool | None = Field(
        default=None,
        description="The upstream's Hi-res Fix: an enhancement pass that also doubles the width "
        "and height. One image per call: only with `samples` 1.",
    )
    clip_skip: Annotated[int, Field(ge=1, le=MAX_CLIP_SKIP)] | None = Field(
        default=None, description="CLIP layers to skip (the family's page: at most 12)."
    )
    upscale: Literal["2x"] | None = Field(
        default=None, description='"2x": the upstream doubles the output\'s width and height.'
    )
    ip_adapter: list[str] | str | None = Field(
        default=None,
        description='IP-Adapter ids, e.g. ["ip-adapter-plus_sd15"]; the page\'s string form '
        f'"[ip-adapter-plus-face_sd15]" too. At most {MAX_IP_ADAPTERS}.',
    )
    ip_adapter_image: ImageUrl | None = Field(
        default=None,
        validate_default=True,
        description="The adapters' reference picture (a face for face adapters): an https URL "
        "the upstream fetches. Required with `ip_adapter`.",
    )
    ip_adapter_scale: list[Annotated[float, Field(ge=0, le=MAX_IP_ADAPTER_SCALE)]] | None = Field(
        default=None, description="One strength per IP-Adapter, e.g. [0.6]."
    )
    ip_adapter_style_images: (
        Annotated[list[ImageUrl], Field(max_length=MAX_STYLE_IMAGES)] | None
    ) = Field(default=None, description="More reference pictures for multi-IP-Adapter; may be [].")
    server_id: ModelId | None = Field(
        default=None, description='Enterprise plans: "any" or one of your upstream servers.'
    )
    base64: bool | None = Field(
        default=None,
        description="Only false: the gateway stores the images and answers with its own "
        "presigned URLs, never base64 data.",
    )
    webhook: ImageUrl | None = Field(
        default=None,
        description="The gateway's own signed webhook to this URL (as the `webhook_url` query "
        "parameter); never forwarded upstream.",
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
    def _numbers_or_numeric_strings(cls, value: Any) -> Any:
        # Checked here so that a wrong item is one error naming the field, not one per member
        # of the union.
        if isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, bool) or not isinstance(item, str | int | float):
                    raise PydanticCustomError(
                        "lora_weight_type",
                        "item {index} must be a number or a numeric string",
                        {"index": index},
                    )
        return value

    @field_validator("lora_weights")
    @classmethod
    def _weights_match_models(
        cls, value: list[str | int | float] | None, info: ValidationInfo
    ) -> list[str | int | float] | None:
        models = info.data.get("lora_models")
        if value is None:
            if models:
                raise PydanticCustomError(
                    "lora_weights_missing", "required when lora_models is given (one per model)"
                )
            return None
        for index, weight in enumerate(value):
            number = _as_number(weight)
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

    @field_validator("hires")
    @classmethod
    def _one_image_per_hires_call(cls, value: bool | None, info: ValidationInfo) -> bool | None:
        samples = info.data.get("samples")
        if value and samples not in (None, 1):
            raise PydanticCustomError(
                "hires_one_sample",
                "only with samples 1 (got {samples}): the upstream's Hi-res Fix makes one image "
                "per call",
                {"samples": samples},
            )
        return value

    @field_validator("ip_adapter", mode="before")
    @classmethod
    def _a_list_or_the_bracketed_string(cls, value: Any) -> Any:
        # Checked here so that a wrong type is one error naming the field, not one per member
        # of the union.
        strings = isinstance(value, list) and all(isinstance(item, str) for item in value)
        if value is not None and not isinstance(value, str) and not strings:
            raise PydanticCustomError(
                "ip_adapter_type",
                'must be a list of IP-Adapter ids, or a string such as "[ip-adapter-plus_sd15]"',
            )
        return value

    @field_validator("ip_adapter")
    @classmethod
    def _known_shape_of_ids(cls, value: list[str] | str | None) -> list[str] | str | None:
        if value is None:
            return None
        if isinstance(value, str):
            text = value.strip()
            if not text or (text[:1] == "[") != (text[-1:] == "]"):
                raise PydanticCustomError(
                    "ip_adapter_string",
                    'must be IP-Adapter ids in brackets, e.g. "[ip-adapter-plus-face_sd15]"',
                )
        ids = ip_adapter_ids(value)
        for index, adapter in enumerate(ids):
            if not _ADAPTER_ID.fullmatch(adapter):
                raise PydanticCustomError(
                    "ip_adapter_id",
                    "item {index} is not an IP-Adapter id: '{adapter}'",
                    {"index": index, "adapter": adapter},
                )
        if len(ids) > MAX_IP_ADAPTERS:
            raise PydanticCustomError(
                "ip_adapter_count",
                "names {count} IP-Adapters; at most {limit}",
                {"count": len(ids), "limit": MAX_IP_ADAPTERS},
            )
        return value

    @field_validator("ip_adapter_image")
    @classmethod
    def _adapters_need_their_image(cls, value: str | None, info: ValidationInfo) -> str | None:
        adapters = info.data.get("ip_adapter")
        if value is None and adapters is not None and ip_adapter_ids(adapters):
            raise PydanticCustomError(
                "ip_adapter_image_missing",
                "required with ip_adapter: the reference picture the adapters read",
            )
        return value

    @field_validator("ip_adapter_scale")
    @classmethod
    def _one_scale_per_adapter(
        cls, value: list[float] | None, info: ValidationInfo
    ) -> list[float] | None:
        adapters = info.data.get("ip_adapter")
        if value and "ip_adapter" in info.data:
            expected = len(ip_adapter_ids(adapters)) if adapters is not None else 0
            if len(value) != expected:
                raise PydanticCustomError(
                    "ip_adapter_scale_count",
                    "has {got} scales for {expected} ip_adapter; give one per adapter",
                    {"got": len(value), "expected": expected},
                )
        return value

    @field_validator("base64")
    @classmethod
    def _links_not_data(cls, value: bool | None) -> bool | None:
        if value:
            raise PydanticCustomError(
                "base64_not_served",
                "only false: the gateway stores every image and answers with its own presigned "
                "URLs (download them for the bytes); it never returns base64 image data",
            )
        return value

    def upstream_body(self) -> dict[str, Any]:
        """What the upstream receives: exactly the fields the caller set to a value, so its
        defaults apply (an explicit null, "" or a -1 seed is the same as leaving it out), and
        never the gateway's own fields (`webhook`)."""
        return self.model_dump(
            mode="json", exclude_unset=True, exclude_none=True, exclude=set(GATEWAY_FIELDS)
        )


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
