"""Request bodies shaped like the upstream's own documentation pages (the shared reference,
`upstream-sd15-parameters.md`): what a new user copies. The unit tests hold the request models
to them field by field; the e2e test sends them through the local stack and compares what the
fake upstream received."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from imagegateway.domain.base import JobKind

PROMPT = (
    "Close up of beautiful young woman with red hair, standing in a field of wildflowers, "
    "photorealistic, 8k quality"
)
NEGATIVE = "error, cropped, worst quality, low quality, duplicate, blurry, bad proportion"
A_MODEL_UUID = "0f5a0b4c-9d67-4a1c-9e2f-5d9c3b7e8a10"
PHOTO = "https://images.example.com/photos/woman-in-field.png"
FACE = "https://images.example.com/photos/face.png"
EDGES = "https://images.example.com/control/edges.png"
POSE = "https://images.example.com/control/pose.png"


@dataclass(frozen=True)
class UpstreamExample:
    """One documented request: its route's kind, its body, and the size factor of its images
    (2 under the upstream's `hires` or `upscale: "2x"`)."""

    name: str
    kind: JobKind
    body: dict[str, Any]
    scale: int = 1


def _hires_fix(hires: bool) -> dict[str, Any]:
    # The Hi-res Fix page: a UUID model, an integer guidance_scale, one sample.
    return {
        "seed": 4721,
        "width": 512,
        "height": 512,
        "prompt": PROMPT,
        "samples": 1,
        "model_id": A_MODEL_UUID,
        "scheduler": "EulerDiscreteScheduler",
        "guidance_scale": 7,
        "negative_prompt": NEGATIVE,
        "num_inference_steps": 20,
        "hires": hires,
    }


_USUAL: dict[str, Any] = {
    "model_id": "sd1.5",
    "prompt": PROMPT,
    "negative_prompt": NEGATIVE,
    "num_inference_steps": 30,
    "guidance_scale": 7.5,
    "width": 512,
    "height": 512,
}

EXAMPLES: tuple[UpstreamExample, ...] = (
    UpstreamExample("hires-fix-on", JobKind.TEXT2IMAGE, _hires_fix(True), scale=2),
    UpstreamExample("hires-fix-off", JobKind.TEXT2IMAGE, _hires_fix(False)),
    UpstreamExample(
        "ip-adapter",
        JobKind.TEXT2IMAGE,
        {
            **_USUAL,
            "samples": 1,
            "ip_adapter": ["ip-adapter-plus_sd15"],
            "ip_adapter_scale": [0.6],
            "ip_adapter_style_images": [],
            "ip_adapter_image": FACE,
        },
    ),
    UpstreamExample(
        "ip-adapter-face-as-a-string",
        JobKind.TEXT2IMAGE,
        {
            **_USUAL,
            "samples": 4,
            "ip_adapter": "[ip-adapter-plus-face_sd15]",
            "ip_adapter_scale": [0.6],
            "ip_adapter_image": FACE,
        },
    ),
    UpstreamExample(
        "controlnet",
        JobKind.CONTROLNET,
        {
            **_USUAL,
            "samples": 1,
            "controlnets": ["canny"],
            "init_images": [EDGES],
            "controlnet_weights": [0.5],
            "starting_control_steps": [],
            "ending_control_steps": [],
            "safety_checker": False,
        },
    ),
    UpstreamExample(
        "multi-controlnet-hires",
        JobKind.CONTROLNET,
        {
            **_USUAL,
            "samples": 1,
            "controlnets": ["canny", "openpose"],
            "init_images": [EDGES, POSE],
            "controlnet_weights": [0.5, 0.8],
            "starting_control_steps": [0.0, 0.1],
            "ending_control_steps": [1.0, 0.9],
            "safety_checker": False,
            "hires": True,
        },
        scale=2,
    ),
    UpstreamExample(
        "image2image-scheduler",
        JobKind.IMAGE2IMAGE,
        {
            **_USUAL,
            "init_image": PHOTO,
            "strength": 0.7,
            "scheduler": "UniPCMultistepScheduler",
            "samples": 1,
            "seed": 12345,
        },
    ),
    UpstreamExample(
        "family-fields",
        JobKind.TEXT2IMAGE,
        {
            **_USUAL,
            "samples": 2,
            "clip_skip": 2,
            "upscale": "2x",
            "server_id": "any",
            "base64": False,
            "embeddings": ["easynegative"],
            "lora_models": ["c7e734b3-db74-43c8-a50d-d1cc2fa150fc"],
            "lora_weights": [0.9],
            "refiner": False,
            "safety_checker": True,
        },
        scale=2,
    ),
)

# A field the upstream does not document, misspelt as a user would.
TYPO: dict[str, Any] = {**_USUAL, "num_inference_step": 20}
