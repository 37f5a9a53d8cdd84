"""The image store's copy of a cached job's images: S3's errors stay in the adapter, the use case
hears the domain's StoredImagesGoneError. A stub S3 client, no sockets."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from imagegateway.adapters import image_store
from imagegateway.adapters.image_store import ImageStore
from imagegateway.domain.errors import StoredImagesGoneError
from imagegateway.domain.tickets import StoredImage
from imagegateway.platform.settings import Settings

ORIGINALS = [
    StoredImage(index=i, key=f"jobs/original/{i}.png", content_type="image/png", size=9, sha256="")
    for i in range(2)
]


class StubS3:
    """copy_object succeeds, or raises `error` (for every copy)."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.copies: list[tuple[str, str]] = []

    def copy_object(self, *, Bucket: str, Key: str, CopySource: dict[str, str]) -> None:
        if self.error is not None:
            raise self.error
        self.copies.append((CopySource["Key"], Key))


def store_with(s3: StubS3, monkeypatch: pytest.MonkeyPatch) -> ImageStore:
    monkeypatch.setattr(image_store, "s3_client", lambda: s3)
    return ImageStore(Settings(jobs_table_name="jobs", images_bucket_name="images"))


def test_the_originals_are_copied_under_the_new_jobs_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    s3 = StubS3()
    copies = store_with(s3, monkeypatch).copy_stored("j-2", ORIGINALS)
    assert [image.key for image in copies] == ["jobs/j-2/0.png", "jobs/j-2/1.png"]
    assert s3.copies == [
        ("jobs/original/0.png", "jobs/j-2/0.png"),
        ("jobs/original/1.png", "jobs/j-2/1.png"),
    ]


@pytest.mark.parametrize(
    "error",
    [
        ClientError({"Error": {"Code": "NoSuchKey", "Message": "gone"}}, "CopyObject"),
        EndpointConnectionError(endpoint_url="https://s3.test"),
    ],
    ids=["client-error", "botocore-error"],
)
def test_an_original_that_cannot_be_copied_is_told_as_gone(
    error: Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given originals S3 will not copy (their retention ended, or S3 is unreachable)
    store = store_with(StubS3(error), monkeypatch)
    # When they are copied / Then the use case hears the domain's error, the cause kept
    with pytest.raises(StoredImagesGoneError) as gone:
        store.copy_stored("j-2", ORIGINALS)
    assert gone.value.__cause__ is error
