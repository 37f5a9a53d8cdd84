"""Which of the upstream's image URLs a job keeps: exactly the `samples` it asked (and paid) for."""

from __future__ import annotations

from imagegateway.domain.errors import IncompleteResultError


def select_image_urls(urls: list[str], expected: int) -> list[str]:
    """Duplicate URLs count once; fewer distinct URLs than asked is a FAILURE (never a partial
    SUCCESS); more than asked keeps the first `expected` (the extras are not stored)."""
    distinct = list(dict.fromkeys(url for url in urls if url))
    if len(distinct) < expected:
        raise IncompleteResultError(
            f"the upstream reported SUCCESS with {len(distinct)} of the {expected} images "
            "the job asked for"
        )
    return distinct[:expected]
