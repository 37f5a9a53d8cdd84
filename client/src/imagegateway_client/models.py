"""The shapes the client hands back, read leniently from the gateway's JSON (fields the gateway
adds later are kept in `Job.view`), and the request body `generate` builds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeGuard

Kind = Literal["text2image", "image2image", "inpainting", "controlnet"]
KINDS: tuple[Kind, ...] = ("text2image", "image2image", "inpainting", "controlnet")
DEFAULT_KIND: Kind = "text2image"
DEFAULT_MODEL_ID = "sd1.5"

PENDING, SUCCESS, FAILURE = "PENDING", "SUCCESS", "FAILURE"

# What a LoRA weight may be given as: the upstream wants strings ("0.8"), numbers are turned
# into strings.
LoraWeight = float | int | str
# LoRA model ids and their weights: {"id": 0.8} or [("id", "0.8"), ...].
Loras = Mapping[str, LoraWeight] | Sequence[tuple[str, LoraWeight]]


def is_kind(value: object) -> TypeGuard[Kind]:
    return value in KINDS


def parse_kind(value: str) -> Kind:
    """`value` as a Kind; ValueError naming the three kinds otherwise."""
    kind = value.strip().lower()
    if not is_kind(kind):
        raise ValueError(f"{value!r} is not a kind: use one of {', '.join(KINDS)}")
    return kind


@dataclass(frozen=True)
class Image:
    """One stored image of a SUCCESS job: a presigned URL (fresh at each status read) and what
    the gateway recorded of its bytes."""

    url: str
    content_type: str
    size: int
    sha256: str

    @property
    def extension(self) -> str:
        return {"image/jpeg": ".jpg", "image/webp": ".webp", "image/gif": ".gif"}.get(
            self.content_type.split(";")[0].strip().lower(), ".png"
        )


@dataclass(frozen=True)
class Job:
    """A job as the gateway reported it. `status` is PENDING, SUCCESS or FAILURE; `kind` is
    None when the answer did not say and the caller did not know it."""

    id: str
    status: str
    kind: Kind | None = None
    images: tuple[Image, ...] = ()
    download_urls: tuple[str, ...] = ()
    error: str | None = None
    error_code: str | None = None
    timings: Mapping[str, Any] = field(default_factory=dict, hash=False)
    # The JSON object as the gateway sent it, every field included.
    view: Mapping[str, Any] = field(default_factory=dict, hash=False)
    # The HTTP status of the answer it was read from (202 for an accepted submit).
    http_status: int | None = None

    @property
    def done(self) -> bool:
        return self.status != PENDING

    @property
    def succeeded(self) -> bool:
        return self.status == SUCCESS

    @property
    def estimated_done_at(self) -> datetime | None:
        """A PENDING job's ETA, as the gateway estimated it from its recent jobs of the same
        shape; None when it has none (a shape not seen lately, or not accepted upstream yet)."""
        raw = self.view.get("estimated_done_at")
        if self.done or not isinstance(raw, str):
            return None
        try:
            return datetime.fromisoformat(raw)
        except ValueError:
            return None

    def eta_text(self, now: datetime | None = None) -> str:
        """What a person reads of the ETA: `about 12 s left`, `due now`, or `no estimate yet`;
        empty for an ended job."""
        if self.done:
            return ""
        eta = self.estimated_done_at
        if eta is None:
            return "no estimate yet"
        left = (eta - (now or datetime.now(UTC))).total_seconds()
        return f"about {left:.0f} s left" if left >= 1 else "due now"

    @property
    def failed(self) -> bool:
        return self.status == FAILURE

    @classmethod
    def from_view(
        cls,
        view: Mapping[str, Any],
        *,
        kind: Kind | None = None,
        http_status: int | None = None,
        job_id: str | None = None,
    ) -> Job:
        """A job from the gateway's job view (`{"status", "id", "download_urls", "images",
        "error", "error_code", "timings", ...}`). ValueError when it is not one."""
        if not isinstance(view, Mapping):
            raise ValueError(f"expected a job object, got {type(view).__name__}")
        status = view.get("status")
        identifier = view.get("id", job_id)
        if not isinstance(status, str) or not isinstance(identifier, str | int):
            raise ValueError("a job object has a string 'status' and an 'id'")
        images = tuple(
            Image(
                url=str(image.get("url", "")),
                content_type=str(image.get("content_type", "image/png")),
                size=int(image.get("size", -1)),
                sha256=str(image.get("sha256", "")),
            )
            for image in view.get("images") or ()
            if isinstance(image, Mapping)
        )
        urls = tuple(str(url) for url in view.get("download_urls") or ())
        stated = view.get("kind")
        timings = view.get("timings")
        error, code = view.get("error"), view.get("error_code")
        return cls(
            id=str(identifier),
            status=status,
            kind=stated if is_kind(stated) else kind,
            images=images,
            download_urls=urls,
            error=None if error is None else str(error),
            error_code=None if code is None else str(code),
            timings=dict(timings) if isinstance(timings, Mapping) else {},
            view=dict(view),
            http_status=http_status,
        )


@dataclass(frozen=True)
class JobPage:
    """One page of `GET /v1/jobs`: the caller's jobs, newest first; `next_cursor` is None on
    the last page."""

    jobs: list[Job]
    next_cursor: str | None


@dataclass(frozen=True)
class Progress:
    """What `Client.wait` tells its `on_progress` callback after each status read."""

    job: Job
    polls: int
    elapsed: float


@dataclass(frozen=True)
class GenerationResult:
    """What `Client.generate` made: the job, and the images saved (empty with wait=False)."""

    job: Job
    files: list[Path]


def lora_fields(loras: Loras) -> dict[str, Any]:
    """LoRAs as the upstream takes them: `lora_models` (ids) and `lora_weights` (one string per
    model, in the same order)."""
    pairs = list(loras.items()) if isinstance(loras, Mapping) else list(loras)
    if not pairs:
        return {}
    models = [model for model, _ in pairs]
    weights = [weight if isinstance(weight, str) else format(weight, "g") for _, weight in pairs]
    return {"lora_models": models, "lora_weights": weights}


@dataclass(frozen=True)
class ControlNet:
    """One ControlNet of a controlnet job: its name (`canny`, `openpose`...), the URL of its
    conditioning image (fetched by the upstream) and, optionally, its weight."""

    name: str
    image: str
    weight: float | None = None


def controlnet_fields(controlnets: Sequence[ControlNet]) -> dict[str, Any]:
    """ControlNets as the upstream takes them: `controlnets`, `init_images` (one each) and
    `controlnet_weights` when every one has a weight. ValueError when only some do."""
    if not controlnets:
        return {}
    fields: dict[str, Any] = {
        "controlnets": [net.name for net in controlnets],
        "init_images": [net.image for net in controlnets],
    }
    weights = [net.weight for net in controlnets if net.weight is not None]
    if weights and len(weights) != len(controlnets):
        raise ValueError("give every ControlNet a weight, or none")
    if weights:
        fields["controlnet_weights"] = weights
    return fields


def request_body(
    *,
    prompt: str,
    model_id: str = DEFAULT_MODEL_ID,
    negative_prompt: str | None = None,
    steps: int | None = None,
    samples: int | None = None,
    width: int | None = None,
    height: int | None = None,
    seed: int | None = None,
    loras: Loras = (),
    init_image: str | None = None,
    mask_image: str | None = None,
    controlnets: Sequence[ControlNet] = (),
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The upstream's request body (its own field names) with only the fields given; the
    gateway validates it and the upstream's defaults apply to the rest. `controlnets` are a
    controlnet job's; `extra` adds any other upstream field as is (guidance_scale, strength,
    scheduler, hires, ip_adapter...)."""
    body: dict[str, Any] = {"model_id": model_id, "prompt": prompt}
    optional: dict[str, Any] = {
        "negative_prompt": negative_prompt,
        "num_inference_steps": steps,
        "samples": samples,
        "width": width,
        "height": height,
        "seed": seed,
        "init_image": init_image,
        "mask_image": mask_image,
    }
    body.update({name: value for name, value in optional.items() if value is not None})
    body.update(lora_fields(loras))
    body.update(controlnet_fields(controlnets))
    body.update(extra or {})
    return body
