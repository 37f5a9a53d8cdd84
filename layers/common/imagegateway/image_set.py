"""Which of the upstream's image URLs a job keeps: exactly the `samples` it asked (and paid) for."""

from __future__ import annotations

from imagegateway.errors import IncompleteResultError
from imagegateway.observability import logger


def select_image_urls(urls: list[str], expected: int) -> list[str]:
    """Duplicate URLs count once; fewer distinct URLs than asked is a FAILURE (never a partial
    SUCCESS); more than asked keeps the first `expected` (extras are logged, not stored)."""
    distinct = list(dict.fromkeys(url for url in urls if url))
    if len(distinct) < expected:
        raise IncompleteResultError(
            f"the upstream reported SUCCESS with {len(distinct)} of the {expected} images "
            "the job asked for"
        )
    if len(distinct) > expected:
        logger.warning(
            "the upstream returned more images than asked for; keeping the first ones",
            extra={"returned": len(distinct), "expected": expected},
        )
    return distinct[:expected]
