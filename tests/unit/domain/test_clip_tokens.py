"""SD 1.5's prompt tokenizer (imagegateway.domain.clip_tokens) against OpenAI's own SimpleTokenizer.

The reference ids (tests/support/clip_reference_ids.json) were made by OpenAI's
clip/simple_tokenizer.py with ftfy 6.3.1 and regex, from the pinned clip-anytorch wheel, by
`python -m tests.support.clip_reference fixture`.
"""

# ruff: noqa: RUF001 (the prompts hold look-alike characters on purpose)
from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from imagegateway.domain import clip_tokens
from tests.support.clip_reference import EMBEDDINGS, EMPHASIS, LONG, PROMPTS, UNICODE

FIXTURE = Path(__file__).parents[2] / "support" / "clip_reference_ids.json"
REFERENCE: dict[str, list[int]] = {
    case["prompt"]: case["ids"] for case in json.loads(FIXTURE.read_text(encoding="utf-8"))
}
# sha256 of the merges as text: the first 48,894 lines of bpe_simple_vocab_16e6.txt after its
# header (the gzip bytes themselves depend on the zlib that wrote them).
MERGES_TEXT_SHA256 = "d308b7377a8ceaa9707a21614fe8c831b9196e197b7aeb69833359362907af02"


def test_the_shipped_merges_are_clips_first_48894_from_the_pinned_package() -> None:
    # Given the merges file the layer ships
    path = Path(clip_tokens.__file__).with_name(clip_tokens.MERGES_FILE)
    # When it is read
    text = gzip.decompress(path.read_bytes())
    # Then it is exactly the text the pinned package's vocabulary gives, and a few hundred KB
    assert hashlib.sha256(text).hexdigest() == MERGES_TEXT_SHA256
    assert text.count(b"\n") == clip_tokens.MERGE_COUNT
    assert path.stat().st_size < 300_000
    # And the vocabulary built from it is CLIP's: 49,408 distinct tokens, the specials last
    tokens = clip_tokens.tokens()
    assert len(tokens) == len(set(tokens)) == 49408
    assert tokens[-2:] == ["<|startoftext|>", "<|endoftext|>"]
    assert (clip_tokens.START_ID, clip_tokens.END_ID) == (49406, 49407)


def test_every_reference_prompt_gets_the_reference_tokenizers_ids() -> None:
    # Given the reference's ids for every prompt of the fixture (emphasis, embeddings, HTML
    # entities, contractions, unicode, emoji, controls, very long and random-assembled prompts)
    assert set(REFERENCE) == set(PROMPTS)
    # When each is encoded / Then the ids are the reference's, one for one
    mismatches = [p for p in PROMPTS if list(clip_tokens.encode(p)) != REFERENCE[p]]
    assert mismatches == []


@pytest.mark.parametrize(
    ("prompt", "words"),
    [
        ("(masterpiece:1.2)", ["(", "masterpiece", ":", "1", ".", "2", ")"]),
        ("((best quality))", ["((", "best", "quality", "))"]),
        ("[blurry], {detailed}", ["[", "blurry", "],", "{", "detailed", "}"]),
        ("(red hair:0.8)", ["(", "red", "hair", ":", "0", ".", "8", ")"]),
        (
            "a [dog:cat:0.5] AND b",
            ["a", "[", "dog", ":", "cat", ":", "0", ".", "5", "]", "and", "b"],
        ),
    ],
)
def test_emphasis_syntax_is_read_as_the_model_reads_it_punctuation_and_all(
    prompt: str, words: list[str]
) -> None:
    # Given an A1111-style emphasis (the upstream passes it to CLIP as text)
    # When it is split into words / Then brackets, weights and digits count like any text
    assert list(clip_tokens.words(clip_tokens.clean(prompt))) == words


def test_emphasis_weights_cost_tokens() -> None:
    # Given the same words, plain and weighted
    # When both are counted / Then each "(...:1.2)" adds its brackets, colon and digits
    assert clip_tokens.count("masterpiece") == 1
    assert clip_tokens.count("(masterpiece:1.2)") == 7
    assert clip_tokens.count("((((masterpiece))))") == 4  # (( ((</w> masterpiece</w> ))))</w>
    for prompt in EMPHASIS:
        assert list(clip_tokens.encode(prompt)) == REFERENCE[prompt]


def test_embedding_and_lora_names_are_split_into_ordinary_tokens() -> None:
    # Given textual-inversion and LoRA names as callers write them
    # When they are counted / Then they cost the tokens CLIP splits them into
    assert clip_tokens.count("easynegative") == 2  # easy + negative
    assert clip_tokens.count("<lora:add_detail:0.8>") == 12  # < lor a : add _ detail : 0 . 8 >
    assert clip_tokens.decode(clip_tokens.encode("EasyNegativeV2")) == "easynegativev 2"
    for prompt in EMBEDDINGS:
        assert list(clip_tokens.encode(prompt)) == REFERENCE[prompt]


@pytest.mark.parametrize(
    ("variant", "plain"),
    [
        ("cafe\u0301", "café"),  # decomposed accents are composed (NFC)
        ("ＦＵＬＬ　ｗｉｄｔｈ！", "full width!"),  # full-width forms are ASCII
        ("“quoted” ‘single’", "\"quoted\" 'single'"),  # curly quotes are straight
        ("ﬁne ﬂowers", "fine flowers"),  # Latin ligatures are letters
        ("Tom &amp; Jerry &#x2019;s", "tom & jerry 's"),  # HTML entities are decoded
        ("a\u200b\x00\x7f\ufeffb", "a\u200bb"),  # control characters are dropped
        ("  A\tCAT\r\n\u3000sits ", "a cat sits"),  # white space collapses, case folds
        ("\x1b[31mred\x1b[0m", "red"),  # terminal colours are dropped
    ],
)
def test_unicode_is_cleaned_as_the_reference_cleans_it(variant: str, plain: str) -> None:
    # Given a prompt as typed or pasted, and its plain form
    # When both are encoded / Then they are the same tokens
    assert clip_tokens.encode(variant) == clip_tokens.encode(plain)


def test_cjk_emoji_and_other_scripts_count_as_byte_level_tokens() -> None:
    # Given prompts in other scripts
    for prompt in UNICODE:
        # When they are encoded / Then the ids are the reference's
        assert list(clip_tokens.encode(prompt)) == REFERENCE[prompt]
    # And text the vocabulary rarely saw costs many tokens: byte pieces, not characters
    assert clip_tokens.count("🔥") == 1  # a common emoji is one token
    assert clip_tokens.count("東") == 2
    assert clip_tokens.count("中文提示词") == 13  # five characters, fifteen UTF-8 bytes
    assert clip_tokens.decode(clip_tokens.encode("東京の夜景")) == "東京の夜景"


def test_a_very_long_prompt_is_counted_whole_and_its_tail_is_named() -> None:
    # Given 100 repeated words and the reference's long prompts
    prompt = "very " * 100
    # When it is counted / Then every token counts, and the 25 past the window are named
    assert clip_tokens.count(prompt) == 100
    assert clip_tokens.beyond_window(prompt) == " ".join(["very"] * 25)
    for long_prompt in LONG:
        assert list(clip_tokens.encode(long_prompt)) == REFERENCE[long_prompt]
    # And a prompt within the window has nothing beyond it
    assert clip_tokens.beyond_window("a lighthouse at dawn") == ""


def test_a_word_cut_by_the_window_is_named_by_its_unread_part() -> None:
    # Given a prompt whose 76th token is the second half of a word
    prompt = "cat " * 74 + "supercalifragilistic"
    ids = clip_tokens.encode(prompt)
    # When its tail is named / Then it is that word's unread tokens
    assert len(ids) > clip_tokens.WINDOW
    assert clip_tokens.beyond_window(prompt) == clip_tokens.decode(ids[75:])
    assert "supercalifragilistic".endswith(clip_tokens.beyond_window(prompt))


def test_importing_the_tokenizer_reads_no_vocabulary() -> None:
    # Given a fresh interpreter / When the submit use case is imported (it counts lazily)
    code = (
        "import sys; import imagegateway.use_cases.submit_job; "
        "print('imagegateway.domain.clip_tokens' in sys.modules); "
        "import imagegateway.domain.clip_tokens as c; print(c.merge_ranks.cache_info().currsize)"
    )
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[3] / "layers" / "common",
    )
    # Then the tokenizer is not even imported, and importing it reads nothing
    assert result.stdout.split() == ["False", "0"]
