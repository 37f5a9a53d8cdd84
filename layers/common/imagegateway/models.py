"""The shapes that cross a boundary: the upstream request and answers, Step Functions payloads,
the job row and the caller's view of a job."""

from __future__ import annotations

import math
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

# Bounds the upstream page leaves open, chosen so that a request we accept is one SD 1.5 can run
# (documented in the README's request table).
MAX_PROMPT_CHARS = 2000
MIN_SIDE, MAX_SIDE, SIDE_STEP = 64, 1024, 8
MAX_SEED = 2**32 - 1
# The usual "random seed" of SD clients: accepted, and not forwarded (the upstream then picks).
RANDOM_SEED = -1
# Integer fields: JSON has one number type, so 20.0 is read as 20 (20.5 is refused).
INTEGER_FIELDS = ("num_inference_steps", "samples", "width", "height", "seed")
MAX_LORAS = 5
MIN_LORA_WEIGHT, MAX_LORA_WEIGHT = -2.0, 2.0
MAX_EMBEDDINGS = 8

ModelId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^\S+$")]
Prompt = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PROMPT_CHARS)]
ImageSide = Annotated[int, Field(ge=MIN_SIDE, le=MAX_SIDE, multiple_of=SIDE_STEP)]


class JobStatus(StrEnum):
    PENDING = "PENDING"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"


class Text2ImageRequest(BaseModel):
    """The upstream's text2image body, field for field, with the upstream page's ranges."""

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
    samples: Annotated[int, Field(ge=1, le=4)] | None = None
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
        if isinstance(value, list):
            return [
                format(item, "g")
                if isinstance(item, int | float) and not isinstance(item, bool)
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
            if not math.isfinite(number):
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

    @property
    def expected_images(self) -> int:
        return self.samples or 1


class UpstreamAnswer(BaseModel):
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


# --- Step Functions payloads ----------------------------------------------------------------


class Failure(BaseModel):
    code: str
    message: str


class CaughtError(BaseModel):
    """What a state's Catch writes at its ResultPath."""

    model_config = ConfigDict(populate_by_name=True)

    error: str = Field(alias="Error")
    cause: str = Field(default="", alias="Cause")


class JobTicket(BaseModel):
    """The workflow's state, passed from state to state: the execution input and the loop body."""

    job_id: str
    # A secret the job row holds too: a task acts only on a ticket whose token matches, so an
    # execution started by anyone but the gateway (or with a tampered input) changes nothing.
    run_token: str = Field(min_length=16, repr=False)
    upstream_id: str | None = None
    status: JobStatus
    download_urls: list[str] = Field(default_factory=list)
    expected_images: int = Field(default=1, ge=1, le=4)
    submit_attempts: int = 0
    polls: int = 0
    wait_seconds: int = Field(ge=1)
    deadline_at: AwareDatetime
    deadline_passed: bool = False
    upstream_completed_at: AwareDatetime | None = None
    failure: Failure | None = None
    error: CaughtError | None = None

    def to_state(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)


class StoredImage(BaseModel):
    index: int
    key: str
    content_type: str
    size: int
    sha256: str


class StoredImages(BaseModel):
    job_id: str
    images: list[StoredImage]


# --- the job row and the caller's view -------------------------------------------------------


class JobRecord(BaseModel):
    """One row of the jobs table."""

    job_id: str
    owner: str
    status: JobStatus
    request: dict[str, Any]
    upstream_id: str | None = None
    run_token: str | None = Field(default=None, repr=False)
    # Set (conditionally, once) just before the upstream POST: a re-run that finds it knows the
    # POST may have been sent, and never sends it again.
    submit_started_at: AwareDatetime | None = None
    reconcile_failures: int = 0
    created_at: AwareDatetime
    updated_at: AwareDatetime
    deadline_at: AwareDatetime
    accepted_at: AwareDatetime | None = None
    upstream_completed_at: AwareDatetime | None = None
    completed_at: AwareDatetime | None = None
    images: list[StoredImage] = Field(default_factory=list)
    error_code: str | None = None
    error_message: str | None = None
    expires_at: int


class ImageView(BaseModel):
    url: str
    content_type: str
    size: int
    sha256: str


class Timings(BaseModel):
    created_at: datetime
    accepted_at: datetime | None = None
    upstream_completed_at: datetime | None = None
    completed_at: datetime | None = None
    queued_seconds: float | None = Field(
        default=None, description="From the request until the upstream accepted the job."
    )
    upstream_seconds: float | None = Field(
        default=None, description="From acceptance until the upstream reported SUCCESS."
    )
    copy_seconds: float | None = Field(
        default=None, description="From the upstream's SUCCESS until the images were in S3."
    )
    total_seconds: float | None = None


class JobView(BaseModel):
    """The upstream's status answer, plus the gateway's richer fields."""

    status: JobStatus
    id: str
    download_urls: list[str] | None = None
    error: str | None = None
    error_code: str | None = None
    images: list[ImageView] | None = None
    timings: Timings | None = None


class ErrorDetail(BaseModel):
    field: str
    message: str


class ErrorResponse(BaseModel):
    """The contract's error body for 400 / 404 / 409 / 413 / 415 / 422 / 5xx answers."""

    status: JobStatus = JobStatus.FAILURE
    error: str
    error_code: str | None = None
    details: list[ErrorDetail] = Field(default_factory=list)
    id: str | None = None
