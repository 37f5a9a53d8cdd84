"""The fake upstream's test card (local/fake_upstream/card.py): a picture that shows the request
it was made for, of the size asked, the same for the same request."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from PIL import Image

from local.aws.template import REPO
from local.fake_upstream.card import card_layout, paint_test_card

SAMPLE: dict[str, Any] = json.loads((REPO / "events" / "text2image_request.json").read_text())


def _decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize(("width", "height"), [(512, 512), (640, 384), (64, 64), (2048, 1024)])
def test_the_card_is_a_png_of_exactly_the_size_asked(width: int, height: int) -> None:
    # Given the sample request
    # When its card is painted at a size
    image = _decoded(paint_test_card(SAMPLE, kind="text2image", width=width, height=height))
    # Then it is an RGB PNG of exactly that size, with light text on its dark part
    assert (image.format, image.mode, image.size) == ("PNG", "RGB", (width, height))
    text_area = image.crop((0, round(height * 0.2), width, height))
    assert max(sum(pixel) for pixel in text_area.getdata()) > 600


def test_the_same_request_gives_the_same_bytes_and_any_change_other_bytes() -> None:
    # Given the sample request and variations of it
    def card(request: dict[str, Any], kind: str = "text2image", index: int = 0) -> bytes:
        return paint_test_card(request, kind=kind, width=256, height=256, index=index)

    first = card(SAMPLE)
    # When each is painted / Then the same request (in any key order) is the same card
    assert card(dict(reversed(SAMPLE.items()))) == first
    # And another seed, prompt, LoRA weight, kind or sample is another card
    others = [
        card(SAMPLE | {"seed": 1}),
        card(SAMPLE | {"prompt": "a fox"}),
        card(SAMPLE | {"lora_weights": ["0.5"]}),
        card(SAMPLE, kind="image2image"),
        card(SAMPLE, index=1),
    ]
    assert first not in others
    assert len(set(others)) == len(others)


def test_the_card_paints_what_was_asked() -> None:
    # Given the sample request (prompt, seed, size, model, a LoRA, steps, guidance)
    # When its card is laid out at 512x512
    _, lines = card_layout(SAMPLE, kind="text2image", width=512, height=512)
    painted = "\n".join(line.text for line in lines)
    # Then its kind and model, its whole prompt, seed, size, steps, guidance and LoRA show
    assert "text2image · sd1.5" in painted
    prompt = " ".join(line.text for line in lines if line.part == "prompt")
    assert prompt == f"“{SAMPLE['prompt']}”"
    for shown in ("seed 12345", "512x512", "steps 20", "guidance 7.5", "LoRA c7e734b3", "x 0.9"):
        assert shown in painted, shown
    assert "image 1 of 1" in painted


def test_a_long_prompt_is_cut_and_the_details_still_show_inside_the_card() -> None:
    # Given a prompt far longer than the card can hold
    request = SAMPLE | {"prompt": "a lighthouse at dusk " * 60}
    for width, height in [(512, 512), (256, 128), (64, 64)]:
        # When it is laid out
        bars, lines = card_layout(request, kind="text2image", width=width, height=height)
        # Then the prompt's last shown line ends in an ellipsis, the seed line still shows, and
        # every line starts below the colour bars and inside the card
        prompt_lines = [line for line in lines if line.part == "prompt"]
        assert prompt_lines[-1].text.endswith("…")
        assert any("seed 12345" in line.text for line in lines)
        for line in lines:
            assert bars <= line.y
            assert line.y + line.size <= height, (width, height, line)


def test_a_request_without_the_optional_fields_still_makes_a_card() -> None:
    # Given the smallest request (no seed, steps, guidance or LoRA)
    request = {"model_id": "sd1.5", "prompt": "a fox"}
    # When it is laid out
    _, lines = card_layout(request, kind="inpainting", width=512, height=512)
    painted = "\n".join(line.text for line in lines)
    # Then it says what the upstream chose on its own
    assert "inpainting · sd1.5" in painted
    assert "seed random" in painted
    assert "steps (default) · guidance (default)" in painted
