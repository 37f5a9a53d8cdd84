"""The fake upstream's pictures: a test card that shows the request it was made for.

A newcomer looking at `make demo`'s PNG should see which request made it: the card paints the
prompt (wrapped), the seed, the size, the kind, the model and LoRA names, the steps and the
guidance, over a strip of colour bars derived from the request (so two requests' pictures look
different at a glance, and each sample of one request too). It is deterministic in the request
(the same body, kind and index give the same bytes: Pillow is pinned, and its bundled font is
used, never the machine's) and exactly the size asked for.

Self-contained on purpose: `paint_test_card(request, kind=, width=, height=, index=)` takes the
body the fake received and returns PNG bytes; the server decides the size (the requested one,
or twice it for a hires / upscaled job) and calls it. `card_lines` is what the card says, for
`make demo` to print.

Pillow is a development dependency (requirements-dev.txt): the fake upstream is never deployed.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from PIL import Image, ImageDraw, ImageFont

# The share of the height the colour bars take, and how many there are.
_BAR_SHARE = 0.16
_BARS = 8
# Text is sized from the smaller side: 512 px gives a 27 px line, readable in a thumbnail.
_TEXT_PER_SIDE = 1 / 19
_SMALLEST_TEXT = 7
_TEXT = (245, 245, 245)
_DIM_TEXT = (200, 205, 215)
_ELLIPSIS = "…"
_LONG_WORD = 16  # characters: a word longer than this is an id, shown as its two ends


def _field(request: Mapping[str, Any], name: str) -> str | None:
    value = request.get(name)
    if value is None or value == "":
        return None
    return str(value)


def _lora_lines(request: Mapping[str, Any]) -> list[str]:
    models = request.get("lora_models")
    if not isinstance(models, list) or not models:
        return []
    weights = request.get("lora_weights")
    weights = weights if isinstance(weights, list) else []
    lines = []
    for position, model in enumerate(models):
        weight = f" x {weights[position]}" if position < len(weights) else ""
        lines.append(f"LoRA {model}{weight}")
    return lines


def card_lines(
    request: Mapping[str, Any], *, kind: str, width: int, height: int, index: int = 0
) -> dict[str, list[str]]:
    """What the card says, by part: `title` (kind and model), `prompt` (one string, wrapped
    when painted), `details` (seed, size, steps, guidance, LoRAs, ...), `footer`."""
    samples = request.get("samples")
    count = samples if isinstance(samples, int) and samples > 0 else 1
    seed = request.get("seed")
    seed_text = "seed random" if seed is None or seed == -1 else f"seed {seed}"
    steps = _field(request, "num_inference_steps")
    guidance = _field(request, "guidance_scale")
    tuning = [
        f"steps {steps}" if steps else "steps (default)",
        f"guidance {guidance}" if guidance else "guidance (default)",
    ]
    strength = _field(request, "strength")
    if strength:
        tuning.append(f"strength {strength}")
    details = [
        f"{seed_text} · {width}x{height} · image {index + 1} of {count}",
        " · ".join(tuning),
        *_lora_lines(request),
    ]
    negative = _field(request, "negative_prompt")
    if negative:
        details.append(f"not: {negative}")
    return {
        "title": [f"{kind} · {_field(request, 'model_id') or '(no model)'}"],
        "prompt": [_field(request, "prompt") or "(no prompt)"],
        "details": details,
        "footer": ["fake upstream test card"],
    }


def _palette(request: Mapping[str, Any], kind: str, index: int) -> bytes:
    key = json.dumps(
        {"request": request, "kind": kind, "index": index}, sort_keys=True, default=str
    ).encode("utf-8")
    return hashlib.shake_256(key).digest(_BARS * 3 + 3)


def _fit(text: str, font: ImageFont.FreeTypeFont, width: float) -> str:
    """`text`, cut with an ellipsis to fit `width` pixels: long ids first lose their middle
    (a LoRA's weight after its id stays in view), then the line its end."""
    if font.getlength(text) <= width:
        return text
    text = " ".join(
        f"{word[:8]}{_ELLIPSIS}{word[-4:]}" if len(word) > _LONG_WORD else word
        for word in text.split(" ")
    )
    if font.getlength(text) <= width:
        return text
    # The longest start that fits with the ellipsis (a bisection: getlength is the cost here).
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if font.getlength(text[:middle] + _ELLIPSIS) <= width:
            low = middle
        else:
            high = middle - 1
    return text[:low] + _ELLIPSIS


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: float) -> list[str]:
    """Greedy word wrap to `width` pixels; a word longer than a line is cut across lines."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if font.getlength(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        while font.getlength(word) > width and len(word) > 1:
            cut = len(word)
            while cut > 1 and font.getlength(word[:cut]) > width:
                cut -= 1
            lines.append(word[:cut])
            word = word[cut:]
        line = word
    if line:
        lines.append(line)
    return lines


@dataclass(frozen=True)
class PaintedLine:
    """One line of text on the card: which part of it, what it says, where it starts, its font
    size."""

    part: str  # title, prompt, details or footer (card_lines' parts)
    text: str
    x: int
    y: int
    size: int

    @property
    def dim(self) -> bool:
        return self.part in ("details", "footer")


@cache
def _font(size: int) -> ImageFont.FreeTypeFont:
    # Pillow's own bundled font (FreeType), never the machine's: the same bytes everywhere.
    font = ImageFont.load_default(size=size)
    # Without FreeType Pillow falls back to a bitmap font of one size: refuse, not mislead.
    assert isinstance(font, ImageFont.FreeTypeFont), "Pillow was built without FreeType"
    return font


def card_layout(
    request: Mapping[str, Any], *, kind: str, width: int, height: int, index: int = 0
) -> tuple[int, list[PaintedLine]]:
    """The colour bars' height and every line the card paints, in order. The title, the details
    and the footer always show; the prompt takes the room left, its last line ending in an
    ellipsis when it is cut."""
    size = max(_SMALLEST_TEXT, round(min(width, height) * _TEXT_PER_SIDE))
    small_size = max(_SMALLEST_TEXT, round(size * 0.8))
    big, small = _font(size), _font(small_size)
    margin = max(2, round(size * 0.6))
    room = width - 2 * margin
    lines = card_lines(request, kind=kind, width=width, height=height, index=index)
    big_line, small_line = round(size * 1.3), round(small_size * 1.3)

    bar_height = max(1, round(height * _BAR_SHARE))
    top, bottom = bar_height + margin, height - margin
    # The title and a line of prompt first, then as many details as fit (the seed and size
    # first), the footer if room is left, and the prompt takes the rest.
    room_left = bottom - top - big_line * (len(lines["title"]) + 1)
    details: list[str] = []
    for text in lines["details"]:
        if room_left < small_line:
            break
        details.append(_fit(text, small, room))
        room_left -= small_line
    footer = lines["footer"] if room_left >= small_line * len(lines["footer"]) else []
    room_left -= small_line * len(footer)
    prompt = _wrap(f"“{lines['prompt'][0]}”", big, room)
    fitting = 1 + max(0, room_left // big_line)
    if len(prompt) > fitting:
        prompt = [*prompt[: fitting - 1], _fit(prompt[fitting - 1] + " " + _ELLIPSIS, big, room)]

    painted: list[PaintedLine] = []
    y = top
    for part, text in [
        *(("title", text) for text in lines["title"]),
        *(("prompt", text) for text in prompt),
    ]:
        painted.append(PaintedLine(part, _fit(text, big, room), margin, y, size))
        y += big_line
    for text in details:
        painted.append(PaintedLine("details", text, margin, y, small_size))
        y += small_line
    for text in footer:
        painted.append(
            PaintedLine("footer", _fit(text, small, room), margin, bottom - small_line, small_size)
        )
    return bar_height, painted


def paint_test_card(
    request: Mapping[str, Any], *, kind: str, width: int, height: int, index: int = 0
) -> bytes:
    """A `width` x `height` RGB PNG showing `request` (the body the upstream received)."""
    if width < 1 or height < 1:
        raise ValueError("width and height must be positive")
    palette = _palette(request, kind, index)
    # A dark background tinted by the request, so the light text keeps its contrast.
    tint = palette[_BARS * 3 : _BARS * 3 + 3]
    background = (18 + tint[0] // 8, 18 + tint[1] // 8, 18 + tint[2] // 8)
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    bar_height, painted = card_layout(request, kind=kind, width=width, height=height, index=index)
    for bar in range(_BARS):
        left, right = bar * width // _BARS, (bar + 1) * width // _BARS
        if right > left:
            red, green, blue = palette[bar * 3 : bar * 3 + 3]
            draw.rectangle((left, 0, right - 1, bar_height - 1), fill=(red, green, blue))
    for line in painted:
        colour = _DIM_TEXT if line.dim else _TEXT
        draw.text((line.x, line.y), line.text, font=_font(line.size), fill=colour)
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=6)
    return out.getvalue()
