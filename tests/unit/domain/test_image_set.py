"""Which of the upstream's image URLs a job keeps: exactly the `samples` it asked for."""

from __future__ import annotations

import pytest

from imagegateway.domain.errors import IncompleteResultError
from imagegateway.domain.image_set import select_image_urls

URLS = [f"https://cdn.imagepipeline.io/{n}.png" for n in range(6)]


def test_exactly_the_images_asked_for_are_kept() -> None:
    assert select_image_urls(URLS[:4], 4) == URLS[:4]


def test_fewer_images_than_asked_for_is_a_failure_not_a_partial_success() -> None:
    # Given samples=4 and an upstream SUCCESS with a single URL
    # Then the job cannot end SUCCESS with 1 image
    with pytest.raises(IncompleteResultError, match="1 of the 4 images"):
        select_image_urls(URLS[:1], 4)


def test_duplicate_urls_count_once() -> None:
    with pytest.raises(IncompleteResultError):
        select_image_urls([URLS[0]] * 4, 4)
    assert select_image_urls([URLS[0], URLS[0], URLS[1]], 2) == URLS[:2]


def test_more_images_than_asked_for_keeps_the_first_ones() -> None:
    # Given an upstream that returns 6 URLs for samples=4: only 4 are copied (and paid for)
    assert select_image_urls(URLS, 4) == URLS[:4]
