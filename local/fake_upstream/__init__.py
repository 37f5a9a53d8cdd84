"""Fake imagepipeline.io SD 1.5 upstream (dev/test only, never deployed).

A real, threaded HTTP server speaking the upstream protocol for the four kinds
(``text2image``, ``image2image``, ``inpainting``, ``controlnet``):

- ``POST /sd/{kind}/v1`` submits a job (header ``API-Key`` required; image2image needs
  ``init_image``, inpainting ``init_image`` and ``mask_image``, controlnet ``controlnets`` and
  one ``init_images`` URL each; ``hires`` only with one sample; else a 200 FAILURE; every
  other field of the upstream's SD 1.5 family is taken as it comes),
- ``GET /sd/{kind}/v1/status/{id}`` polls it (a job is only known on its own kind's route),
- ``GET /images/{job_id}/{index}.png`` serves the generated images (no key needed).

Images are real, deterministic PNGs of the requested size and count (twice the width and height
with ``hires: true`` or ``upscale: "2x"``): test cards that paint the request they were made for
(prompt, seed, size, kind, model, LoRAs, steps, guidance; ``card``). Test-mode behaviour is
chosen by magic ``model_id`` values (see ``MAGIC_MODELS``); any other model id answers PENDING
for ``pending_polls`` status checks, then SUCCESS.

Test hooks (no key needed), so black-box tests can stage any upstream behaviour:

- ``GET /__fake__/stats``: request counters plus one entry per job created upstream
  (``model_id``, ``kind``, ``submitted_at``, ``completed_at``, ``status_checks``, and
  ``request``: the JSON body it was submitted with, as received).
- ``POST /__fake__/reset``: forget jobs, counters and scripts.
- ``POST /__fake__/script``: per model id, lists of canned answers consumed in order by
  submits, status checks and image downloads of that model (then normal behaviour), and
  ``completes_after_seconds`` for time-based completion. See ``FakeUpstream.script``.

Run it standalone with ``python -m local.fake_upstream [--port N] [--host H]``.

The package: ``server`` (``FakeUpstream``, its routes and jobs), ``answers`` (canned and scripted
answers), ``card`` (the images: a test card of the request), ``png`` (plain colour-band PNGs
without Pillow), ``__main__`` (the command).
"""

from local.fake_upstream.card import card_lines, paint_test_card
from local.fake_upstream.png import make_png
from local.fake_upstream.server import (
    DEFAULT_API_KEY,
    DEFAULT_PORT,
    FAILURE_MESSAGE,
    KINDS,
    MAGIC_MODELS,
    MODEL_BROKEN_IMAGE,
    MODEL_FAILURE,
    MODEL_FLAKY,
    MODEL_INSTANT,
    MODEL_NEVER,
    MODEL_REJECT,
    FakeUpstream,
)

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_PORT",
    "FAILURE_MESSAGE",
    "KINDS",
    "MAGIC_MODELS",
    "MODEL_BROKEN_IMAGE",
    "MODEL_FAILURE",
    "MODEL_FLAKY",
    "MODEL_INSTANT",
    "MODEL_NEVER",
    "MODEL_REJECT",
    "FakeUpstream",
    "card_lines",
    "make_png",
    "paint_test_card",
]
