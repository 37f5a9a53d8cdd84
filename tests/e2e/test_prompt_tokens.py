"""Prompt token counts over the local stack, HTTP only: a prompt over the 75 tokens SD 1.5 reads
is answered with its exact count (OpenAI's own tokenizer's, from the reference fixture), the
window and the words the model ignores; `Prefer: strict-tokens` makes it a 422 instead."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from tests.e2e.conftest import Gateway

pytestmark = pytest.mark.network

FIXTURE = Path(__file__).parents[1] / "support" / "clip_reference_ids.json"
# The reference's ids for a 95-token prompt (tests/support/clip_reference.py: LONG[-1]).
REFERENCE = {case["prompt"]: case["ids"] for case in json.loads(FIXTURE.read_text("utf-8"))}
LONG_PROMPT = next(p for p in REFERENCE if p.startswith("a cinematic photo of a vast alien"))


def test_a_prompt_over_the_window_is_answered_with_the_reference_count_and_the_window(
    gateway: Gateway,
) -> None:
    who = f"tokens-{secrets.token_hex(4)}"
    expected = len(REFERENCE[LONG_PROMPT])
    assert expected > 75
    # Given a prompt longer than the model reads
    body = {"model_id": "sd1.5", "prompt": LONG_PROMPT, "negative_prompt": "blurry"}
    # When a client submits it
    response = gateway.submit(body, caller=who, headers={"Content-Type": "application/json"})
    # Then it is accepted with the reference tokenizer's exact count, the window and a warning
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["tokens"] == {"prompt": expected, "negative_prompt": 1, "limit": 75}
    (warning,) = answer["warnings"]
    assert warning.startswith(f"prompt: {expected} tokens, over the 75 the model reads; ignored: ")
    assert warning.endswith("highly detailed textures , sharp focus'")
    # And its status view, read later, says the same
    view = gateway.status(answer["id"], caller=who).json()
    assert (view["tokens"], view["warnings"]) == (answer["tokens"], answer["warnings"])
    # And with Prefer: strict-tokens the same request is a 422 naming the field, and no job
    refused = gateway.submit(
        body, caller=who, headers={"Content-Type": "application/json", "Prefer": "strict-tokens"}
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["error_code"] == "PROMPT_TOO_LONG"
    assert [d["field"] for d in refused.json()["details"]] == ["prompt"]
    jobs = gateway.session.get(f"{gateway.url}/v1/jobs", headers={"X-Local-Caller": who}).json()
    assert [job["id"] for job in jobs["jobs"]] == [answer["id"]]
