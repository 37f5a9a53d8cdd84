"""`make demo` for each kind: its sample body, the KIND choice, and the demo's own client code
(submit, poll, download) against the running local stack."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from imagegateway.domain.base import JobKind
from imagegateway.domain.request_kinds import REQUEST_MODELS
from local import demo
from local.fake_upstream.card import paint_test_card
from tests.e2e.conftest import Gateway

IMAGE_FIELDS = {
    JobKind.TEXT2IMAGE: set(),
    JobKind.IMAGE2IMAGE: {"init_image"},
    JobKind.INPAINTING: {"init_image", "mask_image"},
    JobKind.CONTROLNET: {"init_images"},
}


def urls_in(body: dict[str, Any], names: set[str]) -> list[str]:
    """The URLs of the named fields, one URL or a list each."""
    found: list[str] = []
    for name in names:
        found.extend(body[name] if isinstance(body[name], list) else [body[name]])
    return found


def test_the_demo_knows_every_kind_and_each_has_a_sample_its_model_accepts() -> None:
    # Given the demo's kinds and the gateway's
    assert tuple(kind.value for kind in JobKind) == demo.KINDS
    for kind in JobKind:
        # When the kind's sample body is read by the kind's model
        request = REQUEST_MODELS[kind].model_validate_json(demo.sample_request(kind).read_bytes())
        # Then it is valid and forwards exactly its image URLs, all https
        body = request.upstream_body()
        assert {name for name in body if name.endswith(("_image", "_images"))} == IMAGE_FIELDS[kind]
        assert all(url.startswith("https://") for url in urls_in(body, IMAGE_FIELDS[kind]))


def test_the_kind_is_the_option_then_KIND_then_text2image() -> None:
    assert demo.chosen_kind("inpainting", {"KIND": "image2image"}) == "inpainting"
    assert demo.chosen_kind(None, {"KIND": "image2image"}) == "image2image"
    assert demo.chosen_kind(None, {"KIND": " "}) == "text2image"
    assert demo.chosen_kind(None, {}) == "text2image"


@pytest.mark.parametrize(
    ("argv", "environ", "named"),
    [(["--kind", "img2img"], {}, "--kind 'img2img'"), ([], {"KIND": "Inpainting"}, "KIND=")],
)
def test_an_unknown_kind_stops_the_demo_before_any_stack_starts(
    argv: list[str],
    environ: dict[str, str],
    named: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a kind that is not one of the four
    monkeypatch.delenv("KIND", raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)

    def no_stack(*args: object, **kwargs: object) -> None:
        raise AssertionError("a stack was started")

    monkeypatch.setattr(demo, "StackProcess", no_stack)
    # When the demo starts
    with pytest.raises(SystemExit) as stopped:
        demo.main(argv)
    # Then it exits 2 with an error naming the setting and the four kinds
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert named in error
    assert "text2image, image2image, inpainting, controlnet" in error


@pytest.mark.network
@pytest.mark.parametrize("kind", demo.KINDS)
def test_the_demo_client_gets_images_of_each_kind(
    gateway: Gateway, kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the kind's sample body, under a model id of its own
    source = demo.sample_request(kind)
    request = json.loads(source.read_bytes())
    model_id = f"demo-{kind}-{uuid.uuid4().hex[:8]}"
    request["model_id"] = model_id
    body = json.dumps(request).encode()
    # When the demo submits it to the kind's route and follows it on the kind's status route
    job_id = demo.submit(gateway.url, kind, body, source)
    view = demo.wait_for(gateway.url, kind, job_id)
    # Then it ends SUCCESS with the requested PNGs, from an upstream job of that kind
    assert view["status"] == "SUCCESS", view
    saved = demo.save_images(view, request, tmp_path)
    assert [path.name for path in saved] == ["0.png"]
    jobs = requests.get(gateway.upstream_url + "/__fake__/stats", timeout=10).json()["jobs"]
    assert [job["kind"] for job in jobs.values() if job["model_id"] == model_id] == [kind]
    # And the picture is the test card of the request as sent, which the demo describes: the
    # file, the kind, the prompt and the seed
    size = (request["width"], request["height"])
    assert saved[0].read_bytes() == paint_test_card(
        request, kind=kind, width=size[0], height=size[1]
    )
    capsys.readouterr()
    demo.say_what_the_cards_show(kind, request, saved)
    told = capsys.readouterr().out
    assert f"{saved[0]} is the fake upstream's test card of the request" in told
    for shown in (f"{kind} · {model_id}", f"“{request['prompt']}”", f"seed {request['seed']}"):
        assert shown in told
