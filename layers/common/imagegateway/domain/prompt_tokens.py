"""What SD 1.5 reads of a request's prompts: each one's CLIP tokens against the model's window
(75: it silently drops the rest), and a warning naming the words it drops.

The tokenizer (`clip_tokens`, ~25 ms to import and read its merges) is imported on first use,
so importing this module costs nothing.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from imagegateway.domain.errors import PromptTooLongError
from imagegateway.domain.records import TokenCounts

PROMPT_FIELDS = ("prompt", "negative_prompt")
# A warning quotes at most this much of what the model drops (a prompt is up to 2000 chars).
MAX_QUOTED_CHARS = 200


class Overflow(NamedTuple):
    field: str
    tokens: int
    ignored: str  # the dropped text, as the model's tokenizer reads it (cleaned, lower case)

    def message(self, window: int) -> str:
        quoted = self.ignored
        if len(quoted) > MAX_QUOTED_CHARS:
            quoted = quoted[: MAX_QUOTED_CHARS - 1].rstrip() + "…"
        return f"{self.tokens} tokens, over the {window} the model reads; ignored: '{quoted}'"


class PromptTokens(NamedTuple):
    counts: TokenCounts
    overflows: list[Overflow]

    @property
    def warnings(self) -> list[str]:
        """One line per prompt over the window, e.g. `prompt: 83 tokens, over the 75 the model
        reads; ignored: 'blue eyes, detailed background'`."""
        window = self.counts.limit
        return [f"{over.field}: {over.message(window)}" for over in self.overflows]


def measure_prompts(body: dict[str, Any]) -> PromptTokens:
    """The CLIP tokens of an upstream request body's prompts (an absent one counts 0)."""
    from imagegateway.domain import clip_tokens  # here, not at import: only the counting functions

    window = clip_tokens.WINDOW
    counts: dict[str, int] = {}
    overflows: list[Overflow] = []
    for field in PROMPT_FIELDS:
        text = body.get(field)
        counts[field] = clip_tokens.count(text) if isinstance(text, str) else 0
        if counts[field] > window:
            ignored = clip_tokens.beyond_window(str(text), window)
            overflows.append(Overflow(field, counts[field], ignored))
    return PromptTokens(
        counts=TokenCounts(
            prompt=counts["prompt"], negative_prompt=counts["negative_prompt"], limit=window
        ),
        overflows=overflows,
    )


def refuse_truncated_prompts(measured: PromptTokens) -> None:
    """`Prefer: strict-tokens`: a prompt the model would cut is refused (PromptTooLongError, a
    422 naming the field) before anything is stored or sent."""
    if not measured.overflows:
        return
    window = measured.counts.limit
    summary = "; ".join(f"{over.field}: {over.tokens} tokens" for over in measured.overflows)
    raise PromptTooLongError(
        f"invalid request: {summary}, over the {window} the model reads (Prefer: strict-tokens)",
        details=[(over.field, over.message(window)) for over in measured.overflows],
    )
