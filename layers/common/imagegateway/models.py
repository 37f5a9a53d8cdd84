"""The shapes that cross a boundary: the upstream request and answers, Step Functions payloads,
the job row and the caller's view of a job."""

from __future__ import annotations

import math
import os
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
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


class GatewayModel(BaseModel):
    """Every model here: its validator is built at its first use, not at import, so a function
    pays only for the models it uses (tens of ms of a cold start otherwise)."""

    model_config = ConfigDict(defer_build=True)


class JobStatus(StrEnum):
    PENDING = "PENDING"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"


class JobKind(StrEnum):
    """The upstream's SD 1.5 endpoints: one protocol, three request bodies."""

    TEXT2IMAGE = "text2image"
    IMAGE2IMAGE = "image2image"
    INPAINTING = "inpainting"

    @property
    def submit_path(self) -> str:
        return f"/sd/{self.value}/v1"

    def status_path(self, upstream_id: str) -> str:
        return f"/sd/{self.value}/v1/status/{upstream_id}"


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


# --- Step Functions payloads ----------------------------------------------------------------


class Failure(GatewayModel):
    code: str
    message: str


class CaughtError(GatewayModel):
    """What a state's Catch writes at its ResultPath."""

    model_config = ConfigDict(populate_by_name=True)

    error: str = Field(alias="Error")
    cause: str = Field(default="", alias="Cause")


class JobTicket(GatewayModel):
    """The workflow's state, passed from state to state: the execution input and the loop body."""

    job_id: str
    # A secret the job row holds too: a task acts only on a ticket whose token matches, so an
    # execution started by anyone but the gateway (or with a tampered input) changes nothing.
    run_token: str = Field(min_length=16, repr=False)
    upstream_id: str | None = None
    status: JobStatus
    download_urls: list[str] = Field(default_factory=list)
    expected_images: int = Field(default=1, ge=1, le=MAX_SAMPLES)
    submit_attempts: int = 0
    polls: int = 0
    wait_seconds: int = Field(ge=1)
    deadline_at: AwareDatetime
    deadline_passed: bool = False
    upstream_completed_at: AwareDatetime | None = None
    # Why the job is failing, once: a failure a state decided (code and message), or the error
    # a Catch caught (Error and Cause), which RecordFailure turns into a code and a message.
    failure: Failure | CaughtError | None = None
    # Express executions only: when this execution's first task ran (the hand-over clock), and
    # whether the job must go on in a new execution (the 5-minute limit is near).
    execution_started_at: AwareDatetime | None = None
    hand_over: bool = False
    hand_overs: int = 0
    # A submit the upstream put off (429, unreachable) is not tried again before this.
    submit_not_before: AwareDatetime | None = None

    def to_state(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)

    def handed_over(self) -> JobTicket:
        """The ticket a new execution goes on with (its first task starts the clock again)."""
        return self.model_copy(
            update={
                "hand_over": True,
                "execution_started_at": None,
                "hand_overs": self.hand_overs + 1,
            }
        )


MAX_REFERENCE_CHARS = 256
MAX_TASK_TOKEN_CHARS = 2048  # Step Functions' own bound on a task token


class StoredImage(GatewayModel):
    index: int
    key: str
    content_type: str
    size: int
    sha256: str


class StoredImages(GatewayModel):
    job_id: str
    images: list[StoredImage]


# --- the job row and the caller's view -------------------------------------------------------


class Callbacks(GatewayModel):
    """What a job's caller asked to be told when it ends, kept on its job row: a `reference` echoed
    in every completion, a Step Functions task token to answer, a webhook to deliver."""

    reference: str | None = Field(default=None, min_length=1, max_length=MAX_REFERENCE_CHARS)
    task_token: str | None = Field(
        default=None, min_length=1, max_length=MAX_TASK_TOKEN_CHARS, repr=False
    )
    webhook_url: ImageUrl | None = None


class TokenCounts(GatewayModel):
    """The CLIP tokens of the prompts, and how many of each SD 1.5 reads (`limit`): the model
    silently drops the tokens past it."""

    prompt: int = Field(description="Tokens of `prompt`, as SD 1.5's CLIP tokenizer counts them.")
    negative_prompt: int = Field(description="Tokens of `negative_prompt` (0 without one).")
    limit: int = Field(description="The tokens the model reads of each (75).")


class JobRecord(GatewayModel):
    """One row of the jobs table."""

    job_id: str
    owner: str
    # Rows written before the other kinds existed are text2image jobs.
    kind: JobKind = JobKind.TEXT2IMAGE
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
    callbacks: Callbacks | None = None
    # Counted when the job was recorded (absent on rows written before counting existed).
    tokens: TokenCounts | None = None
    warnings: list[str] | None = None
    # Served from this earlier job's images (a fixed-seed request its caller already ran).
    cached_from: str | None = None
    expires_at: int


class ImageView(GatewayModel):
    url: str
    content_type: str
    size: int
    sha256: str


class Timings(GatewayModel):
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


class JobView(GatewayModel):
    """The upstream's status answer, plus the gateway's richer fields."""

    status: JobStatus
    id: str
    kind: JobKind | None = None
    download_urls: list[str] | None = None
    error: str | None = None
    error_code: str | None = None
    images: list[ImageView] | None = None
    timings: Timings | None = None
    tokens: TokenCounts | None = None
    warnings: list[str] | None = Field(
        default=None,
        description="What the caller should know about the job, e.g. a prompt over the tokens "
        "the model reads, with the words it ignores.",
    )
    cached_from: str | None = Field(
        default=None,
        description="Served from this earlier job's images, without an upstream call: the "
        "caller already ran this fixed-seed request (`Cache-Control: no-cache` forces a new one).",
    )


class JobList(GatewayModel):
    """One page of a caller's jobs, newest first; `next_cursor` fetches the next page."""

    jobs: list[JobView]
    next_cursor: str | None = None


class ErrorDetail(GatewayModel):
    field: str
    message: str


def field_name(location: tuple[Any, ...], *, prefix: str = "") -> str:
    """A validation error's location as a caller reads it: `loras[1].weight`, `webhook_url`;
    `body` and `query` are dropped (the body is the request, a query parameter is its name)."""
    name = prefix
    for part in (part for part in location if part not in ("body", "query")):
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"


def error_details(errors: list[Any], *, prefix: str = "") -> list[ErrorDetail]:
    """Pydantic's errors (`ValidationError.errors()`) as the contract's details."""
    return [
        ErrorDetail(
            field=field_name(tuple(err.get("loc", ())), prefix=prefix),
            message=str(err.get("msg", "")),
        )
        for err in errors
    ]


class ErrorResponse(GatewayModel):
    """The contract's error body for 400 / 404 / 409 / 413 / 415 / 422 / 429 / 5xx answers."""

    status: JobStatus = JobStatus.FAILURE
    error: str
    error_code: str | None = None
    details: list[ErrorDetail] = Field(default_factory=list)
    id: str | None = None
    # BUDGET_EXCEEDED: when the caller's daily budget starts again.
    resets_at: datetime | None = None


# --- event-driven entries and completion (contract: docs/design.md) ---------------------------

EVENT_SOURCE = "imagepipeline-gateway"


class DetailType(StrEnum):
    REQUESTED = "Image Generation Requested"
    SUCCEEDED = "Image Generation Succeeded"
    FAILED = "Image Generation Failed"


class Envelope(Callbacks):
    """A request from a queue or an event bus. Only `request` is required. The request itself is
    validated against its kind's model separately, so its errors name `request.<field>`."""

    model_config = ConfigDict(extra="forbid")

    kind: JobKind = JobKind.TEXT2IMAGE
    request: dict[str, Any]
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=255)
    # False: a fixed-seed request already run is generated again, not served from its images.
    cache: bool = True


class CompletedImage(GatewayModel):
    bucket: str
    key: str
    url: str
    content_type: str
    size: int
    sha256: str


class CompletionDetail(GatewayModel):
    """The `detail` of a completion event, the output of an answered task token and the `data`
    of a webhook. Fields that do not apply are left out (dumped with exclude_none)."""

    job_id: str | None = None
    kind: JobKind | None = None
    status: JobStatus
    reference: str | None = None
    images: list[CompletedImage] | None = None
    error: str | None = None
    error_code: str | None = None
    details: list[ErrorDetail] | None = None
    timings: Timings | None = None

    @property
    def detail_type(self) -> DetailType:
        return DetailType.SUCCEEDED if self.status is JobStatus.SUCCESS else DetailType.FAILED


class Completion(GatewayModel):
    """A job's last task's output: PublishCompletion puts it on the bus as it is."""

    detail_type: DetailType
    detail: CompletionDetail

    @classmethod
    def of(cls, detail: CompletionDetail) -> Completion:
        return cls(detail_type=detail.detail_type, detail=detail)
