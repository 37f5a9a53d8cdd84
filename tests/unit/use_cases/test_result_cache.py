"""The result cache: its key (only requests with a seed, per caller and kind, blind to key
order), and serving a repeat from the original's images, with in-memory collaborators."""

from __future__ import annotations

from datetime import UTC, datetime

from imagegateway.domain.base import JobKind
from imagegateway.domain.prompt_tokens import measure_prompts
from imagegateway.domain.records import JobRecord
from imagegateway.platform.settings import Settings
from imagegateway.use_cases.result_cache import cache_key, served_from_cache
from tests.support.fakes import FakeImageStore, FakeJobStore, FakeNotifier, fake_ports

BODY = {"model_id": "sd1.5", "prompt": "a fox", "seed": 7, "samples": 2}
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
URL = "https://cdn.imagepipeline.io/u-1/"

# The entry point measures a request's prompts once and passes them down.
TOKENS = measure_prompts({"prompt": "p"})


def test_a_request_without_a_seed_is_never_cached() -> None:
    # Given a request the upstream seeds at random / Then it has no key
    assert cache_key("o", JobKind.TEXT2IMAGE, {"model_id": "sd1.5", "prompt": "a fox"}) is None


def test_equal_requests_share_a_key_whatever_their_field_order() -> None:
    reordered = dict(reversed(list(BODY.items())))
    assert cache_key("o", JobKind.TEXT2IMAGE, BODY) == cache_key("o", JobKind.TEXT2IMAGE, reordered)


def test_the_caller_the_kind_and_every_field_are_part_of_the_key() -> None:
    key = cache_key("o", JobKind.TEXT2IMAGE, BODY)
    assert key != cache_key("someone-else", JobKind.TEXT2IMAGE, BODY)
    assert len({key, *(cache_key("o", kind, BODY) for kind in JobKind)}) == len(JobKind)
    assert key != cache_key("o", JobKind.TEXT2IMAGE, {**BODY, "seed": 8})
    assert key != cache_key("o", JobKind.TEXT2IMAGE, {**BODY, "samples": 1})


def test_with_the_cache_off_nothing_is_looked_up() -> None:
    # Given an operator who turned the cache off (ResultCache=false)
    class Untouchable(FakeJobStore):
        def served_by(self, cache_key: str) -> JobRecord | None:
            raise AssertionError("the cache was consulted")

    settings = Settings(jobs_table_name="jobs", images_bucket_name="images", result_cache=False)
    deps = fake_ports(settings=settings, jobs=Untouchable())
    # When a fixed-seed request comes / Then it is generated (no job served, nothing looked up)
    assert (
        served_from_cache("j", JobKind.TEXT2IMAGE, BODY, owner="o", tokens=TOKENS, deps=deps)
        is None
    )


def served_original(jobs: FakeJobStore, images: FakeImageStore) -> JobRecord:
    """The caller's earlier fixed-seed job of BODY, SUCCESS, its two images in the bucket."""
    original = JobRecord.model_validate(
        {
            "job_id": "original",
            "owner": "o",
            "status": "SUCCESS",
            "request": BODY,
            "images": images.copy_all("original", [URL + "0.png", URL + "1.png"]),
            "created_at": NOW,
            "updated_at": NOW,
            "deadline_at": NOW,
            "expires_at": 0,
        }
    )
    jobs.put(original)
    jobs.items["original"]["cache_key"] = cache_key("o", JobKind.TEXT2IMAGE, BODY)
    return original


def test_a_repeat_is_served_from_the_originals_images_and_told_like_any_job() -> None:
    # Given a caller's earlier fixed-seed job of the same request
    jobs, images, notifier = FakeJobStore(), FakeImageStore(), FakeNotifier()
    original = served_original(jobs, images)
    deps = fake_ports(jobs=jobs, images=images, notifier=notifier)
    # When the same request comes again
    served = served_from_cache("j-2", JobKind.TEXT2IMAGE, BODY, owner="o", tokens=TOKENS, deps=deps)
    # Then a new job, born SUCCESS, holds copies of the original's images under its own keys
    assert served is not None
    assert (served.job_id, served.status, served.cached_from) == ("j-2", "SUCCESS", "original")
    assert [image.key for image in served.images] == ["jobs/j-2/0.png", "jobs/j-2/1.png"]
    assert [image.sha256 for image in served.images] == [i.sha256 for i in original.images]
    assert jobs.get("j-2").status == "SUCCESS"
    # and its end is told like any other job's
    (published,) = notifier.published
    assert (published.detail.job_id, published.detail.status) == ("j-2", "SUCCESS")


def test_when_the_originals_images_are_gone_the_request_is_generated_again() -> None:
    # Given an earlier fixed-seed job whose images' retention ended
    jobs, images, notifier = FakeJobStore(), FakeImageStore(), FakeNotifier()
    served_original(jobs, images)
    images.objects.clear()
    deps = fake_ports(jobs=jobs, images=images, notifier=notifier)
    # When the same request comes again / Then nothing is served: no job, nothing told
    assert (
        served_from_cache("j-2", JobKind.TEXT2IMAGE, BODY, owner="o", tokens=TOKENS, deps=deps)
        is None
    )
    assert (list(jobs.items), notifier.published) == (["original"], [])
