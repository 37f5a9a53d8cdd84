"""The data behind domain.clip_tokens, made from a pinned PyPI package, and the reference
token ids its tests check against. Dev-only: run by hand, never by the tests or the layer build.

    python -m tests.support.clip_reference merges
        Downloads clip-anytorch (pinned below, checked by sha256: OpenAI's CLIP code and
        bpe_simple_vocab_16e6.txt.gz, MIT) and writes
        layers/common/imagegateway/domain/clip_merges.txt.gz:
        the first 48,894 merges, the only ones CLIP ViT-L/14 (so SD 1.5) uses.

    <venv with ftfy==6.3.1 and regex>/bin/python -m tests.support.clip_reference fixture
        Runs OpenAI's own SimpleTokenizer (clip/simple_tokenizer.py from the same wheel: it needs
        ftfy and regex, not torch) on PROMPTS and writes tests/support/clip_reference_ids.json.

    <same venv>/bin/python -m tests.support.clip_reference compare [N]
        Compares imagegateway.domain.clip_tokens with the reference on PROMPTS and N random strings
        (ASCII, Latin, CJK, emoji, marks, controls, HTML entities...) and prints the mismatches.

Run from the repository root. The ids are stable: the merges file and the reference are pinned.
"""

# ruff: noqa: RUF001, S311, SIM905 (the prompts are meant to hold look-alike characters; seeded samples)
from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import random
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MERGES = ROOT / "layers" / "common" / "imagegateway" / "domain" / "clip_merges.txt.gz"
FIXTURE = Path(__file__).with_name("clip_reference_ids.json")
WHEEL = "clip-anytorch==2.6.0"
WHEEL_SHA256 = "ebc0afed243851b9dc7e16ab8afb665237e8a5838986e97cd99f123ae4ce94ce"
VOCAB_IN_WHEEL = "clip/bpe_simple_vocab_16e6.txt.gz"
TOKENIZER_IN_WHEEL = "clip/simple_tokenizer.py"
MERGE_COUNT = 48894

EMPHASIS = [
    "(masterpiece:1.2), ((best quality)), [blurry], {detailed}, (red hair:0.8)",
    "((((ultra detailed)))), [[[low quality]]], (face:1.35), (eyes:-0.5)",
    "a (cat:1.1) and a [dog:cat:0.5] AND a bird BREAK sunset",
    "(worst quality, low quality:1.4), (monochrome:1.1), \\(artist\\)",
    "portrait of a woman, (freckles:0.9), [smile|frown], {{{intricate}}}",
]
EMBEDDINGS = [
    "<lora:add_detail:0.8> <lora:epiNoiseoffset_v2:1> a knight",
    "easynegative, bad-hands-5, ng_deepnegative_v1_75t, badhandv4, EasyNegativeV2",
    "embedding:verybadimagenegative_v1.3, <hypernet:anime:0.6>, <lyco:LoCon_x:0.7>",
    "BadDream, (UnrealisticDream:1.2), FastNegativeV2, negative_hand-neg",
    "<lora:Detail Tweaker LoRA (细节调整LoRA):0.5>, photo of sks dog",
]
EVERYDAY = [
    "a photo of an astronaut riding a horse on mars",
    "a lighthouse on a cliff at dawn, photorealistic",
    "8k uhd, dslr, soft lighting, high quality, film grain, Fujifilm XT3",
    "portrait, 85mm f/1.8, bokeh, 1990s, 3d render, 16:9, 4K, 2.5D, v1.5",
    "ugly, tiling, poorly drawn hands, poorly drawn feet, out of frame, extra limbs",
    "it's a dog's life; they're happy, I'll go, we've seen, I'm here, he'd know, don't",
    "rock'n'roll O'Neil 'quoted' ''double'' '' 'S 'T 'RE 'VE 'M 'LL 'D",
    "trending on artstation, by greg rutkowski and alphonse mucha, #art @user $5 100%",
    "a|b, c/d, e\\f, g_h, i-j, k+l, m=n, o~p, q^r, s*t, u&v, w<x>y, z?!...",
    "---- ____ .... !!!! ???? ;;;; :::: ,,,, '''' \"\"\"\" ````",
    "1234567890 3.14159 -42 +7 1e10 0x1F 1,000,000 12:30 2026-11-26",
    "Tom &amp; Jerry, R&amp;D, &lt;3, &gt;_&lt;, &quot;hi&quot;, &#39;s, &#x2019;, &nbsp;x",
    "&amp;amp;amp; &AMP; &NTILDE; &eacute; &Eacute; &copy &not that &#128293; &#xD800;",
    "<b>bold</b> &amp; stays &lt;b&gt;",
    "<|startoftext|> a cat <|endoftext|> a dog <|ENDOFTEXT|> x<|endoftext|>",
    "  leading and trailing spaces   ",
    "tabs\tand\nnew\r\nlines\rand\u2028separators\u2029and\x85next\x0bvt\x0cff",
    "A",
    "!",
    "'s",
    "x" * 3,
]
UNICODE = [
    "café crème brûlée, naïve façade, Ångström, straße, İstanbul, Œuvre, ﬁne ﬂowers",
    "Ｆｕｌｌｗｉｄｔｈ　ｔｅｘｔ！ ｶﾀｶﾅ，　全角スペース",
    "“curly double” ‘curly single’ „low“ ‛reversed‛ ‟q‟ ʼmodifier",
    "東京の夜景, 桜の木の下で, 美しい少女, 高品質",
    "中文提示词：一只可爱的猫，坐在窗台上，阳光明媚",
    "한국어 프롬프트, 아름다운 풍경",
    "русский пейзаж зимой, ελληνικό νησί, العربية جميلة, עברית",
    "हिन्दी चित्र, ไทย ภาพ, தமிழ், ქართული, Ελληνικά",
    "🔥✨👩‍🚀🏳️‍🌈 emoji 😀😃😄 👍🏽 ❤️ 🇯🇵 1️⃣",
    "×÷±≠≈∞ ™©® °C µm ½ ¼ ² ³ Ⅻ ⅷ ① ⑳ ¹²³ ٣٤ १२३ ३.५",
    "e\u0301 a\u0308 n\u0303 combining marks, \u200bzero\u200cwidth\u200djoiner\ufeffbom",
    "control \x00\x01\x07\x1b[31mred\x1b[0m \x7f \x1c\x1d\x1e\x1f \u206a \ufffc",
    "c1 \x93quoted\x94 \x85 \x80 \x81 \x9d",
    "lone \ud83d surrogates \udc00 (as JSON may carry them)",
    "Ǆemal ǈjubljana ĳs ŉ ſtar ſ's 'ſ",
    "ǅ ǲ Σίσυφος ΣΑΣ İı ẞ ß ﬀ",
    "mixed中文English混合テキスト123abc",
    "\u00a0nbsp\u2003em\u3000ideographic\u202fnarrow\u205fmath\u1680ogham",
]
LONG = [
    "very " * 100,
    "a" * 500,
    "1234567890" * 40,
    "🔥" * 200,
    "東" * 300,
    ", ".join(f"(tag{i}:1.{i % 10})" for i in range(150)),
    "masterpiece, best quality, " * 30,
    " ".join(["supercalifragilisticexpialidocious"] * 40),
    "a cinematic photo of a vast alien landscape with towering crystal spires, "
    "bioluminescent plants glowing softly in the twilight, two moons hanging low on the "
    "horizon, a lone explorer in a weathered spacesuit walking toward a distant "
    "ancient ruin, volumetric fog, god rays, ultra detailed, 8k, octane render, "
    "trending on artstation, by simon stalenhag and moebius, dramatic lighting, "
    "wide angle lens, rich colors, highly detailed textures, sharp focus",
]

FRAGMENTS = [
    *"masterpiece best quality portrait landscape cat dog knight dragon castle forest".split(),
    *"(detailed:1.3) [blurry] ((sharp)) <lora:x:0.6> easynegative 8k 4k f/2.8".split(),
    *"café naïve Ångström 東京 桜 中文 한국 русский 🔥 ✨ 👩‍🚀 ½ ² &amp; &lt; “q” ‘s’".split(),
    *"it's don't they're I'll O'Neil ... !!! --- ___ 1.5 2026 16:9 #tag @me".split(),
]
SEPARATORS = [" ", ", ", ",", " | ", "\n", "  ", "; ", "", "\t"]


def generated_prompts(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    prompts = []
    for _ in range(count):
        parts = rng.choices(FRAGMENTS, k=rng.randint(1, 60))
        prompts.append("".join(part + rng.choice(SEPARATORS) for part in parts).strip() or "x")
    return prompts


PROMPTS = EMPHASIS + EMBEDDINGS + EVERYDAY + UNICODE + LONG + generated_prompts(120, seed=12)

# Characters for random strings: every class the pattern and the cleaning tell apart.
ALPHABET = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    " \t\n\r    '\"()[]{}<>:;,.!?-_/\\|@#$%^&*+=~`"
    "éèêëàâäôöûüçñßÅØœæſİıĳǅǄ"
    "東京桜中文日本語한국어ひらがなカタカナｶﾀｶﾅＡＢ１２！，　"
    "русскийελληνικάعربيעבריתहिन्दीไทย"
    "🔥✨👩‍🚀🏽❤️🇯🇵"
    "\u0301\u0308\u200b\u200c\u200d\ufeff\u00a0\u2028\u2029\u3000"
    "\x00\x07\x1b\x7f\x1c\x85\x93\x94\x9d\u206a\ufffc"
    "½²³Ⅻ①٣१“”‘’„ʼ×÷™©"
)
SNIPPETS = ["&amp;", "&lt;", "&gt;", "&#39;", "&#x2019;", "&nbsp;", "&AMP;", "<|endoftext|>",
            "'s", "'re", "'ll", "\x1b[31m", "(x:1.2)", "<lora:a:1>"]  # fmt: skip


def random_strings(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        pieces = []
        for _ in range(rng.randint(1, 40)):
            pieces.append(rng.choice(SNIPPETS) if rng.random() < 0.1 else rng.choice(ALPHABET))
        texts.append("".join(pieces))
    return texts


# --- the pinned package ---------------------------------------------------------------------


def wheel_files(*names: str) -> dict[str, bytes]:
    """Files of the pinned clip-anytorch wheel, downloaded with pip and checked by sha256."""
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(  # noqa: S603
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", folder, WHEEL],
            check=True,
        )
        (wheel,) = Path(folder).glob("*.whl")
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != WHEEL_SHA256:
            raise SystemExit(f"{wheel.name}: sha256 {digest}, expected {WHEEL_SHA256}")
        with zipfile.ZipFile(wheel) as archive:
            return {name: archive.read(name) for name in names}


def trimmed_merges(vocab_gz: bytes) -> str:
    lines = gzip.decompress(vocab_gz).decode("utf-8").split("\n")
    # SimpleTokenizer: merges[1 : 49152 - 256 - 2 + 1] (line 0 is a version header).
    merges = lines[1 : 49152 - 256 - 2 + 1]
    assert len(merges) == MERGE_COUNT
    return "\n".join(merges) + "\n"


def write_merges() -> None:
    text = trimmed_merges(wheel_files(VOCAB_IN_WHEEL)[VOCAB_IN_WHEEL])
    MERGES.write_bytes(gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0))
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    print(f"{MERGES.relative_to(ROOT)}: {MERGES.stat().st_size} bytes, text sha256 {digest}")


def reference_tokenizer() -> Any:
    """OpenAI's SimpleTokenizer from the pinned wheel (needs ftfy and regex)."""
    files = wheel_files(VOCAB_IN_WHEEL, TOKENIZER_IN_WHEEL)
    folder = Path(tempfile.mkdtemp())
    (folder / "bpe.txt.gz").write_bytes(files[VOCAB_IN_WHEEL])
    (folder / "simple_tokenizer.py").write_bytes(files[TOKENIZER_IN_WHEEL])
    spec = importlib.util.spec_from_file_location(
        "simple_tokenizer", folder / "simple_tokenizer.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SimpleTokenizer(str(folder / "bpe.txt.gz"))


def write_fixture() -> None:
    reference = reference_tokenizer()
    cases = [{"prompt": prompt, "ids": reference.encode(prompt)} for prompt in PROMPTS]
    lines = ",\n".join(json.dumps(case, separators=(",", ":")) for case in cases)
    FIXTURE.write_text(f"[\n{lines}\n]\n", encoding="utf-8")
    print(f"{FIXTURE.relative_to(ROOT)}: {len(cases)} prompts")


def compare(random_count: int) -> None:
    # Loaded from its file (it needs only the standard library and its merges file beside it), so
    # the reference venv needs no install of the package.
    spec = importlib.util.spec_from_file_location("clip_tokens", MERGES.with_name("clip_tokens.py"))
    assert spec is not None
    assert spec.loader is not None
    clip_tokens: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(clip_tokens)

    reference = reference_tokenizer()
    texts = PROMPTS + random_strings(random_count, seed=2026)
    mismatches = [t for t in texts if list(clip_tokens.encode(t)) != reference.encode(t)]
    for text in mismatches[:20]:
        print(f"MISMATCH {text!r}: {list(clip_tokens.encode(text))} != {reference.encode(text)}")
    print(f"{len(texts) - len(mismatches)} of {len(texts)} texts give the reference's ids")


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "merges":
        write_merges()
    elif command == "fixture":
        write_fixture()
    elif command == "compare":
        compare(int(sys.argv[2]) if len(sys.argv) > 2 else 20000)
    else:
        raise SystemExit(__doc__)
