"""The upstream's whole documented SD 1.5 surface (#22): every field of the reference on every
kind, with its limits, ControlNet's body, and the two fields that change the answer (`webhook`,
`base64`). Field by field and cheap: the e2e test sends only the documented example bodies."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from imagegateway.domain.base import JobKind
from imagegateway.domain.request_kinds import REQUEST_MODELS, ControlNetRequest
from tests.support.upstream_examples import EDGES, EXAMPLES, FACE, POSE, TYPO, UpstreamExample

BASE: dict[str, Any] = {"model_id": "sd1.5", "prompt": "a red door"}
URL = "https://images.example.com/a.png"
# The smallest valid body of each kind.
MINIMAL: dict[JobKind, dict[str, Any]] = {
    JobKind.TEXT2IMAGE: BASE,
    JobKind.IMAGE2IMAGE: {**BASE, "init_image": URL},
    JobKind.INPAINTING: {**BASE, "init_image": URL, "mask_image": URL},
    JobKind.CONTROLNET: {**BASE, "controlnets": ["canny"], "init_images": [EDGES]},
}


def refused_fields(kind: JobKind, body: dict[str, Any]) -> dict[str, str]:
    """The fields a body is refused for, each with its message."""
    with pytest.raises(ValidationError) as caught:
        REQUEST_MODELS[kind].model_validate(body)
    return {
        ".".join(str(part) for part in error["loc"]): error["msg"]
        for error in caught.value.errors()
    }


def forwarded(kind: JobKind, body: dict[str, Any]) -> dict[str, Any]:
    return REQUEST_MODELS[kind].model_validate(body).upstream_body()


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda example: example.name)
def test_every_documented_example_is_accepted_and_forwarded_as_sent(
    example: UpstreamExample,
) -> None:
    # Given a body shaped like one of the upstream's documented examples
    # When its kind's model reads it
    body = forwarded(example.kind, example.body)
    # Then every field reaches the upstream as it was sent
    assert body == example.body


def test_a_field_the_upstream_does_not_document_is_still_refused_by_name() -> None:
    assert set(refused_fields(JobKind.TEXT2IMAGE, TYPO)) == {"num_inference_step"}


FAMILY_FIELDS: dict[str, Any] = {
    "scheduler": "DPMSolverMultistepScheduler",
    "hires": True,
    "embeddings": ["easynegative"],
    "ip_adapter": ["ip-adapter-plus_sd15"],
    "ip_adapter_image": FACE,
    "ip_adapter_scale": [0.6],
    "ip_adapter_style_images": [URL],
    "clip_skip": 2,
    "upscale": "2x",
    "server_id": "any",
    "refiner": False,
    "safety_checker": True,
    "base64": False,
    "lora_models": ["a-lora"],
    "lora_weights": [0.7],
}


@pytest.mark.parametrize("kind", list(JobKind))
def test_every_kind_takes_the_family_fields_and_forwards_them_as_sent(kind: JobKind) -> None:
    # Given a kind's minimal body with every field the family's pages document
    body = {**MINIMAL[kind], **FAMILY_FIELDS}
    # When it is read, Then it is forwarded as sent
    assert forwarded(kind, body) == body


@pytest.mark.parametrize(
    ("field", "good", "bad"),
    [
        ("clip_skip", [1, 12, 12.0], [0, 13, "2", 2.5, True]),
        ("upscale", ["2x"], ["4x", "2", 2, "", True]),
        ("hires", [True, False], ["true", 1]),
        ("scheduler", ["EulerDiscreteScheduler", "DDIMScheduler"], ["Euler a", "DPM++", ""]),
        ("server_id", ["any", "gpu-eu-7"], ["", "two words", "x" * 129, 7]),
        ("ip_adapter_scale", [[0.0], [2], [1.25]], [[-0.1], [2.01], ["0.6"], 0.6, [0.6, 0.6]]),
        ("ip_adapter_style_images", [[], [URL] * 8], [[URL] * 9, ["/a.png"], URL]),
        ("ip_adapter_image", [FACE], ["https://user:secret@images.example.com/f.png", "f.png"]),
        ("width", [64, 1536], [1544, 56, 1004]),
        ("height", [64, 1536], [1544, 56]),
        ("base64", [False], [True, "false"]),
        ("webhook", ["https://hooks.example.com/images"], ["ftp://x.example", "hooks", 7]),
        ("lora_weights", [["0.9"], [0.9], [1], [-2]], [[2.5], ["2.5"], [True], [10**400]]),
    ],
)
def test_each_field_holds_its_limits_and_names_itself(
    field: str, good: list[Any], bad: list[Any]
) -> None:
    # Given text2image with IP-Adapter and LoRA fields the limited fields need beside them
    body = {
        **BASE,
        "ip_adapter": ["ip-adapter-plus_sd15"],
        "ip_adapter_image": FACE,
        "lora_models": ["a-lora"],
        "lora_weights": ["0.5"],
    }
    for value in good:
        # Then each good value is accepted
        REQUEST_MODELS[JobKind.TEXT2IMAGE].model_validate({**body, field: value})
    for value in bad:
        # And each bad one is refused naming the field (or an item of it), and only it
        refused = refused_fields(JobKind.TEXT2IMAGE, {**body, field: value})
        assert {name.split(".")[0] for name in refused} == {field}, value


@pytest.mark.parametrize(
    "adapters",
    [
        ["ip-adapter-plus_sd15", "ip-adapter-plus-face_sd15"],
        "[ip-adapter-plus-face_sd15]",
        "[ip-adapter-plus_sd15, ip-adapter-plus-face_sd15]",
        "['ip-adapter-plus_sd15']",
        "ip-adapter-plus_sd15",
    ],
)
def test_ip_adapter_is_a_list_or_the_pages_bracketed_string(adapters: Any) -> None:
    count = 2 if "," in str(adapters) or isinstance(adapters, list) else 1
    body = {**BASE, "ip_adapter": adapters, "ip_adapter_image": FACE}
    body["ip_adapter_scale"] = [0.5] * count
    assert forwarded(JobKind.TEXT2IMAGE, body)["ip_adapter"] == adapters


@pytest.mark.parametrize(
    "adapters",
    ["", " ", "[a,,b]", "[two words]", "[a", ["ok", ""], ["x"] * 5, "[" + ",".join("x" * 5) + "]"],
)
def test_a_malformed_ip_adapter_is_refused_naming_it(adapters: Any) -> None:
    body = {**BASE, "ip_adapter": adapters, "ip_adapter_image": FACE}
    assert set(refused_fields(JobKind.TEXT2IMAGE, body)) == {"ip_adapter"}


def test_an_ip_adapter_needs_its_image_and_one_scale_per_adapter() -> None:
    adapter = {**BASE, "ip_adapter": "[ip-adapter-plus-face_sd15]"}
    assert set(refused_fields(JobKind.TEXT2IMAGE, adapter)) == {"ip_adapter_image"}
    two_scales = {**adapter, "ip_adapter_image": FACE, "ip_adapter_scale": [0.5, 0.5]}
    message = refused_fields(JobKind.TEXT2IMAGE, two_scales)["ip_adapter_scale"]
    assert "2 scales for 1 ip_adapter" in message
    # An empty list of adapters asks for none: nothing else is needed
    assert forwarded(JobKind.TEXT2IMAGE, {**BASE, "ip_adapter": []})["ip_adapter"] == []
    assert forwarded(JobKind.TEXT2IMAGE, {**BASE, "ip_adapter": "[]"})["ip_adapter"] == "[]"


@pytest.mark.parametrize("kind", list(JobKind))
def test_hires_makes_one_image_per_call_as_the_upstream_page_asks(kind: JobKind) -> None:
    # Given Hi-res Fix with 2 samples, When it is read
    refused = refused_fields(kind, {**MINIMAL[kind], "hires": True, "samples": 2})
    # Then it is refused naming hires, saying why
    assert set(refused) == {"hires"}
    assert "samples 1" in refused["hires"]
    # And with 1 sample (or none given) or hires off, it is accepted
    assert forwarded(kind, {**MINIMAL[kind], "hires": True, "samples": 1})["hires"] is True
    assert forwarded(kind, {**MINIMAL[kind], "hires": True})["hires"] is True
    assert forwarded(kind, {**MINIMAL[kind], "hires": False, "samples": 4})["samples"] == 4


def test_base64_true_is_refused_saying_why() -> None:
    message = refused_fields(JobKind.TEXT2IMAGE, {**BASE, "base64": True})["base64"]
    assert "presigned URLs" in message


def test_a_body_webhook_is_the_gateways_own_and_never_forwarded() -> None:
    # Given a body with a webhook
    hook = "https://hooks.example.com/images"
    request = REQUEST_MODELS[JobKind.TEXT2IMAGE].model_validate({**BASE, "webhook": hook})
    # Then the gateway keeps it, and the upstream's body does not carry it
    assert request.webhook == hook
    assert request.upstream_body() == BASE


# --- ControlNet ------------------------------------------------------------------------------

TWO = {**BASE, "controlnets": ["canny", "openpose"], "init_images": [EDGES, POSE]}


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"init_images": [EDGES]}, "init_images"),
        ({"controlnet_weights": [0.5]}, "controlnet_weights"),
        ({"starting_control_steps": [0.1]}, "starting_control_steps"),
        ({"ending_control_steps": [0.9, 0.9, 0.9]}, "ending_control_steps"),
        ({"controlnet_weights": [0.5, 2.5]}, "controlnet_weights.1"),
        ({"controlnet_weights": [0.5, -0.1]}, "controlnet_weights.1"),
        ({"starting_control_steps": [0.0, 1.1]}, "starting_control_steps.1"),
        ({"ending_control_steps": [1.0, -0.1]}, "ending_control_steps.1"),
        (
            {"starting_control_steps": [0.5, 0.0], "ending_control_steps": [0.4, 1.0]},
            "ending_control_steps",
        ),
        ({"init_images": [EDGES, "https://u:p@images.example.com/p.png"]}, "init_images.1"),
        ({"controlnets": ["canny", "two words"]}, "controlnets.1"),
        ({"controlnets": ["canny"] * 6, "init_images": [EDGES] * 6}, "controlnets"),
        ({"controlnet_weights": ["0.5", 0.5]}, "controlnet_weights.0"),
        ({"init_image": EDGES}, "init_image"),
    ],
)
def test_controlnet_lists_agree_in_length_and_hold_their_ranges(
    patch: dict[str, Any], field: str
) -> None:
    refused = refused_fields(JobKind.CONTROLNET, {**TWO, **patch})
    assert field in refused
    # Nothing else is refused (six ControlNets are also six images too many)
    assert set(refused) <= {field, "init_images"}


@pytest.mark.parametrize("missing", ["controlnets", "init_images"])
def test_controlnet_needs_its_controlnets_and_their_images(missing: str) -> None:
    body = {name: value for name, value in TWO.items() if name != missing}
    assert missing in refused_fields(JobKind.CONTROLNET, body)
    assert "controlnets" in refused_fields(JobKind.CONTROLNET, {**TWO, "controlnets": []})


def test_controlnet_lists_given_empty_mean_the_upstreams_defaults() -> None:
    empty = {"controlnet_weights": [], "starting_control_steps": [], "ending_control_steps": []}
    assert forwarded(JobKind.CONTROLNET, {**TWO, **empty}) == {**TWO, **empty}


def test_controlnet_is_the_fourth_kind_on_the_familys_routes() -> None:
    assert REQUEST_MODELS[JobKind.CONTROLNET] is ControlNetRequest
    assert JobKind.CONTROLNET.submit_path == "/sd/controlnet/v1"
    assert JobKind.CONTROLNET.status_path("42") == "/sd/controlnet/v1/status/42"
