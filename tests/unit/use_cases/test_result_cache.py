"""The result cache's key: only requests with a seed, per caller and kind, blind to key order."""

from __future__ import annotations

from imagegateway.domain.base import JobKind
from imagegateway.use_cases.result_cache import cache_key

BODY = {"model_id": "sd1.5", "prompt": "a fox", "seed": 7, "samples": 2}


def test_a_request_without_a_seed_is_never_cached() -> None:
    # Given a request the upstream seeds at random / Then it has no key
    assert cache_key("o", JobKind.TEXT2IMAGE, {"model_id": "sd1.5", "prompt": "a fox"}) is None


def test_equal_requests_share_a_key_whatever_their_field_order() -> None:
    reordered = dict(reversed(list(BODY.items())))
    assert cache_key("o", JobKind.TEXT2IMAGE, BODY) == cache_key("o", JobKind.TEXT2IMAGE, reordered)


def test_the_caller_the_kind_and_every_field_are_part_of_the_key() -> None:
    key = cache_key("o", JobKind.TEXT2IMAGE, BODY)
    assert key != cache_key("someone-else", JobKind.TEXT2IMAGE, BODY)
    assert key != cache_key("o", JobKind.IMAGE2IMAGE, BODY)
    assert key != cache_key("o", JobKind.TEXT2IMAGE, {**BODY, "seed": 8})
    assert key != cache_key("o", JobKind.TEXT2IMAGE, {**BODY, "samples": 1})


def test_with_the_cache_off_nothing_is_looked_up() -> None:
    # Given an operator who turned the cache off (ResultCache=false)
    from typing import cast

    from imagegateway.adapters.job_store import JobStore
    from imagegateway.entrypoints.wiring import Collaborators
    from imagegateway.platform.settings import Settings
    from imagegateway.use_cases.result_cache import served_from_cache

    class Untouchable:
        def served_by(self, key: str) -> None:
            raise AssertionError("the cache was consulted")

    settings = Settings(jobs_table_name="jobs", images_bucket_name="images", result_cache=False)
    deps = Collaborators(settings, jobs=cast(JobStore, Untouchable()))
    # When a fixed-seed request comes / Then it is generated (no job served, nothing looked up)
    assert served_from_cache("j", JobKind.TEXT2IMAGE, BODY, owner="o", deps=deps) is None
