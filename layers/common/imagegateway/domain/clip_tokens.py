"""SD 1.5's prompt tokenizer, exactly: CLIP ViT-L/14's byte-level BPE (OpenAI's SimpleTokenizer),
in the standard library alone.

Stable Diffusion 1.5 reads a prompt as `<|startoftext|>`, the prompt's first 75 tokens and
`<|endoftext|>` (77 in all) and drops the rest. `count()` tells how many tokens a prompt has and
`beyond_window()` which words the model never sees.

The steps are SimpleTokenizer's: basic cleaning (ftfy's `fix_text`, then HTML unescaping twice),
whitespace cleaning, lowercasing, its word pattern, then byte-level BPE with `</w>` word ends.
Two differences from the reference, both for unusual text:
- ftfy's mojibake repair (text decoded in the wrong encoding, e.g. "cafÃ©") is not repeated;
  every other fix of `fix_text` is (HTML entities, C1 controls, Latin ligatures, full-width
  forms, curly quotes, line breaks, surrogates, terminal escapes, control characters, NFC);
- letters and numbers (`\\p{L}`, `\\p{N}`) are those of this Python's Unicode database (15.0 on
  python3.12), so a character assigned by a later Unicode version counts as punctuation.

The merges (`clip_merges.txt.gz`, 208 KB: the first 48,894 lines of OpenAI's
bpe_simple_vocab_16e6.txt, MIT, from the pinned clip-anytorch wheel; tests/support/clip_reference.py
rebuilds it) are read on first use and kept for the process: importing this module reads nothing,
the first count takes about 25 ms (the import included).
"""

from __future__ import annotations

import gzip
import html
import html.entities
import re
import unicodedata
from collections.abc import Iterator, Sequence
from functools import cache, lru_cache
from itertools import pairwise
from pathlib import Path

# What SD 1.5 reads of a prompt: CLIP's 77 positions less the start and end tokens.
WINDOW = 75
MERGES_FILE = "clip_merges.txt.gz"
MERGE_COUNT = 48894  # vocabulary 49408 = 256 bytes + 256 bytes</w> + merges + 2 special tokens
START, END = "<|startoftext|>", "<|endoftext|>"
WORD_END = "</w>"


def _byte_symbols() -> dict[int, str]:
    """GPT-2's reversible map of the 256 byte values to printable characters. Its order (the
    printable bytes first, then the others) is the order of the first 256 token ids."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    symbols: dict[int, str] = {byte: chr(byte) for byte in printable}
    extra = 0
    for byte in range(256):
        if byte not in symbols:
            symbols[byte] = chr(256 + extra)
            extra += 1
    return symbols


_SYMBOLS = _byte_symbols()
BYTE_SYMBOLS = [_SYMBOLS[byte] for byte in range(256)]  # by byte value
SYMBOL_BYTES = {symbol: byte for byte, symbol in _SYMBOLS.items()}
SYMBOL_IDS = {symbol: token_id for token_id, symbol in enumerate(_SYMBOLS.values())}
# Token ids: 0-255 the byte symbols, 256-511 the same ending a word (`</w>`), then one per merge
# in rank order (merge r makes token 512 + r, a string no other id has), then the two specials.
FIRST_MERGE_ID = 512
START_ID, END_ID = FIRST_MERGE_ID + MERGE_COUNT, FIRST_MERGE_ID + MERGE_COUNT + 1


@cache
def merge_ranks() -> dict[str, int]:
    """CLIP's merges by their line ("first second"), ranked: read once per process (~15 ms)."""
    data = Path(__file__).with_name(MERGES_FILE).read_bytes()
    lines = gzip.decompress(data).decode("utf-8").rstrip("\n").split("\n")
    if len(lines) != MERGE_COUNT:
        raise ValueError(f"{MERGES_FILE} holds {len(lines)} merges, not {MERGE_COUNT}")
    return dict(zip(lines, range(MERGE_COUNT), strict=True))


@cache
def tokens() -> list[str]:
    """Every token's text by id (CLIP's 49,408), for decode(): built only when asked for."""
    symbols = list(_SYMBOLS.values())
    merged = (line.replace(" ", "") for line in merge_ranks())  # symbols never hold a space
    return [*symbols, *(symbol + WORD_END for symbol in symbols), *merged, START, END]


# --- basic cleaning: ftfy.fix_text without its mojibake repair, then html.unescape twice -------

_ENTITY = re.compile(r"&#?[0-9A-Za-z]{1,24};")
_TERMINAL_ESCAPE = re.compile("\033\\[((?:\\d|;)*)([a-zA-Z])")
_C1_CONTROL = re.compile("[\x80-\x9f]")
_SURROGATE_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_SINGLE_QUOTES = re.compile("[\u02bc\u2018-\u201b]")
_DOUBLE_QUOTES = re.compile("[\u201c-\u201f]")
# ftfy's Latin ligatures, and the characters its remove_control_chars drops.
_LIGATURE_PARTS = "IJ ij \u02bcn DZ Dz dz DŽ Dž dž LJ Lj lj NJ Nj nj ff fi fl ffi ffl \u017ft st"
_LIGATURES = str.maketrans(
    dict(zip("ĲĳŉǱǲǳǄǅǆǇǈǉǊǋǌﬀﬁﬂﬃﬄﬅﬆ", _LIGATURE_PARTS.split(), strict=True))
)
_CONTROLS = dict.fromkeys(
    [*range(0x00, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F, *range(0x206A, 0x2070), 0xFEFF]
)
_CONTROLS.update(dict.fromkeys(range(0xFFF9, 0xFFFD)))
_LINE_BREAKS = str.maketrans({"\r": "\n", "\u2028": "\n", "\u2029": "\n", "\x85": "\n"})


@cache
def _tables() -> tuple[dict[str, str], dict[int, str]]:
    """ftfy's HTML entities (the HTML5 names that end in `;`, and the upper-case forms of the
    lower-case ones that mean nothing else) and its full-width/half-width map."""
    entities: dict[str, str] = {}
    for name, char in html.entities.html5.items():
        if name.endswith(";"):
            entities["&" + name] = char
            upper = "&" + name.upper()
            if name == name.lower() and html.unescape(upper) == upper:
                entities[upper] = char.upper()
    widths = {0x3000: " "}
    for point in range(0xFF01, 0xFFF0):
        normal = unicodedata.normalize("NFKC", chr(point))
        if normal != chr(point):
            widths[point] = normal
    return entities, widths


def _unescape_entity(match: re.Match[str]) -> str:
    text = match.group(0)
    entities, _ = _tables()
    if text in entities:
        return entities[text]
    if text.startswith("&#"):
        unescaped = html.unescape(text)
        return text if ";" in unescaped else unescaped
    return text


def _c1_as_windows_1252(match: re.Match[str]) -> str:
    try:
        return match.group(0).encode("latin-1").decode("cp1252")
    except UnicodeDecodeError:  # 0x81, 0x8d, 0x8f, 0x90, 0x9d: kept, as ftfy's sloppy codec does
        return match.group(0)


def _surrogate_pair(match: re.Match[str]) -> str:
    pair = match.group(0)
    return chr(0x10000 + (ord(pair[0]) - 0xD800) * 0x400 + (ord(pair[1]) - 0xDC00))


def _fix_segment(text: str, *, unescape: bool) -> str:
    """One line through ftfy's fixes, over and over until nothing changes."""
    _, widths = _tables()
    while True:
        before = text
        if unescape:
            text = _ENTITY.sub(_unescape_entity, text)
        text = _C1_CONTROL.sub(_c1_as_windows_1252, text)
        text = text.translate(_LIGATURES).translate(widths)
        text = _SINGLE_QUOTES.sub("'", _DOUBLE_QUOTES.sub('"', text))
        text = text.replace("\r\n", "\n").translate(_LINE_BREAKS)
        if _SURROGATE.search(text):
            text = _SURROGATE.sub("\ufffd", _SURROGATE_PAIR.sub(_surrogate_pair, text))
        text = _TERMINAL_ESCAPE.sub("", text).translate(_CONTROLS)
        text = unicodedata.normalize("NFC", text)
        if text == before:
            return text


def fix_text(text: str) -> str:
    """ftfy.fix_text's defaults, line by line, less the mojibake repair. As in ftfy, HTML
    entities are decoded until a line holding `<` is met (it looks like markup from there on)."""
    fixed: list[str] = []
    unescape = True
    for line in re.findall(r"[^\n]*\n|[^\n]+", text):
        unescape = unescape and "<" not in line
        fixed.append(_fix_segment(line, unescape=unescape))
    return "".join(fixed)


_WHITESPACE = re.compile(r"\s+")


def clean(text: str) -> str:
    """SimpleTokenizer's text before the word pattern: cleaned, spaces collapsed, lower case."""
    text = html.unescape(html.unescape(fix_text(text))).strip()
    return _WHITESPACE.sub(" ", text).strip().lower()


# --- words: SimpleTokenizer's pattern -----------------------------------------------------------
# <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
# (IGNORECASE), matched by hand: the standard `re` has no \p{L} / \p{N}. After clean() the only
# white space left is " ".

# U+017F (long s) is an `s` under the reference's IGNORECASE.
_CONTRACTIONS = ("'re", "'ve", "'ll", "'s", "'t", "'m", "'d", "'\u017f")


def _kind(char: str) -> str:
    if char == " ":
        return " "
    major = unicodedata.category(char)[0]
    return major if major in "LN" else "P"


def words(text: str) -> Iterator[str]:
    """The pattern's matches in cleaned text, in order (what findall returns)."""
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "<" and text.startswith((START, END), i):
            word = START if text.startswith(START, i) else END
        elif char == "'" and text.startswith(_CONTRACTIONS, i):
            word = next(c for c in _CONTRACTIONS if text.startswith(c, i))
        else:
            kind = _kind(char)
            if kind == " ":
                i += 1
                continue
            end = i + 1
            if kind != "N":
                while end < n and _kind(text[end]) == kind:
                    end += 1
            word = text[i:end]
        yield word
        i += len(word)


# --- byte-level BPE -----------------------------------------------------------------------------


@lru_cache(maxsize=8192)
def _bpe(word: str) -> tuple[int, ...]:
    """The token ids of one word (a pattern match): its bytes' symbols, merged pair by pair,
    the lowest-ranked pair first, until no pair is a merge."""
    if word in (START, END):
        return (START_ID if word == START else END_ID,)
    ranks = merge_ranks()
    symbols = [BYTE_SYMBOLS[byte] for byte in word.encode("utf-8")]
    parts = [*symbols[:-1], symbols[-1] + WORD_END]
    ids = [*(SYMBOL_IDS[symbol] for symbol in symbols[:-1]), SYMBOL_IDS[symbols[-1]] + 256]
    while len(parts) > 1:
        rank, first, second = min(
            (ranks.get(f"{a} {b}", MERGE_COUNT), a, b) for a, b in pairwise(parts)
        )
        if rank == MERGE_COUNT:
            break
        merged_parts: list[str] = []
        merged_ids: list[int] = []
        i = 0
        while i < len(parts):
            if i < len(parts) - 1 and parts[i] == first and parts[i + 1] == second:
                merged_parts.append(first + second)
                merged_ids.append(FIRST_MERGE_ID + rank)
                i += 2
            else:
                merged_parts.append(parts[i])
                merged_ids.append(ids[i])
                i += 1
        parts, ids = merged_parts, merged_ids
    return tuple(ids)


@lru_cache(maxsize=256)
def encode(text: str) -> tuple[int, ...]:
    """The prompt's token ids, without the start and end tokens SD adds around them."""
    return tuple(token for word in words(clean(text)) for token in _bpe(word))


def count(text: str) -> int:
    """How many CLIP tokens the prompt is (SD 1.5 reads the first WINDOW)."""
    return len(encode(text))


def decode(ids: Sequence[int]) -> str:
    """The text of token ids as the model sees it: cleaned, lower case, words spaced."""
    texts = tokens()
    raw = bytearray()
    for token in (texts[i] for i in ids):
        word_end = token.endswith(WORD_END)
        raw += bytes(SYMBOL_BYTES[s] for s in (token[: -len(WORD_END)] if word_end else token))
        raw += b" " if word_end else b""
    return raw.decode("utf-8", errors="replace").strip()


def beyond_window(text: str, window: int = WINDOW) -> str:
    """What the model never reads of the prompt: the text of its tokens past the window."""
    return decode(encode(text)[window:])
