"""Copying the upstream's images into our bucket: streamed, hashed, typed by their own bytes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import IO, cast
from urllib.parse import urljoin

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError
from urllib3.exceptions import HTTPError
from urllib3.response import BaseHTTPResponse

from imagegateway.adapters.aws_clients import s3_client
from imagegateway.adapters.downloads import DownloadClient, check_download_url
from imagegateway.domain.errors import (
    ImageDownloadError,
    ImageRejectedError,
    StoredImagesGoneError,
)
from imagegateway.domain.tickets import StoredImage
from imagegateway.platform.observability import logger
from imagegateway.platform.settings import Settings, get_settings

CHUNK_BYTES = 64 * 1024
MAX_REDIRECTS = 3
# Below this an image goes up in one PutObject; above it, in 8 MiB parts: memory stays bounded.
TRANSFER = TransferConfig(multipart_threshold=8 * 1024 * 1024, max_concurrency=2)

SIGNATURES: tuple[tuple[bytes, int, str, str], ...] = (
    # (magic bytes, offset, content type, extension)
    (b"\x89PNG\r\n\x1a\n", 0, "image/png", "png"),
    (b"\xff\xd8\xff", 0, "image/jpeg", "jpg"),
    (b"WEBP", 8, "image/webp", "webp"),
)
SNIFF_BYTES = 12


def sniff_image_type(head: bytes) -> tuple[str, str]:
    """(content type, extension) from the file's signature, never from a Content-Type header."""
    for magic, offset, content_type, extension in SIGNATURES:
        if head[offset : offset + len(magic)] == magic and (
            extension != "webp" or head.startswith(b"RIFF")
        ):
            return content_type, extension
    raise ImageRejectedError("the upstream's file is not a PNG, JPEG or WebP image")


def image_key(job_id: str, index: int, extension: str) -> str:
    """Deterministic per job and image, so a retried copy overwrites instead of duplicating."""
    return f"jobs/{job_id}/{index}.{extension}"


class _HashingStream:
    """A read()-able view of a chunk iterator that hashes, counts and caps what passes through.

    Each read joins its chunks once (no growing bytes buffer), so a read of n bytes holds about
    n bytes: s3transfer asks for whole parts (8 MiB) from a stream it cannot seek.
    """

    def __init__(self, head: bytes, rest: Iterator[bytes], max_bytes: int) -> None:
        self._pending = head
        self._rest = rest
        self._max_bytes = max_bytes
        self.size = 0
        self.digest = hashlib.sha256()

    def _next_chunk(self) -> bytes:
        """The next non-empty chunk, or b"" at the end."""
        if self._pending:
            chunk, self._pending = self._pending, b""
            return chunk
        return next((chunk for chunk in self._rest if chunk), b"")

    def read(self, amount: int = -1) -> bytes:
        parts: list[bytes] = []
        have = 0
        while amount < 0 or have < amount:
            chunk = self._next_chunk()
            if not chunk:
                break
            if amount >= 0 and have + len(chunk) > amount:
                cut = amount - have
                chunk, self._pending = chunk[:cut], chunk[cut:]
            parts.append(chunk)
            have += len(chunk)
            if self.size + have > self._max_bytes:
                raise ImageRejectedError(f"the image is larger than {self._max_bytes} bytes")
        out = b"".join(parts)
        self.size += len(out)
        self.digest.update(out)
        return out


class ImageStore:
    def __init__(
        self, settings: Settings | None = None, downloads: DownloadClient | None = None
    ) -> None:
        self._settings = settings or get_settings()
        self._downloads = downloads or DownloadClient(self._settings)

    def copy_all(self, job_id: str, urls: list[str]) -> list[StoredImage]:
        """Copy every image, in parallel; any failure fails the whole set (no partial results)."""
        if not urls:
            raise ImageDownloadError("the upstream reported SUCCESS without any download_urls")
        workers = min(len(urls), self._settings.image_download_workers)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="copy") as pool:
            futures = [
                pool.submit(self.copy_one, job_id, index, url) for index, url in enumerate(urls)
            ]
            return [future.result() for future in futures]

    def _open(self, index: int, url: str) -> BaseHTTPResponse:
        """GET the image, following at most a few redirects, each hop checked like the first and
        fetched from the address its check resolved."""
        for _ in range(MAX_REDIRECTS + 1):
            try:
                target = check_download_url(url, self._settings)
                response = self._downloads.open(target)
            except (ImageRejectedError, ImageDownloadError) as exc:
                raise type(exc)(f"image {index}: {exc.message}") from exc
            except HTTPError as exc:
                logger.warning(
                    "image download failed",
                    extra={"image": index, "host": target.host, "error": repr(exc)},
                )
                raise ImageDownloadError(f"image {index}: {type(exc).__name__}") from exc
            location = response.get_redirect_location()
            if not location:
                return response
            response.close()
            url = urljoin(target.url, location)
        raise ImageRejectedError(f"image {index}: more than {MAX_REDIRECTS} redirects")

    def copy_one(self, job_id: str, index: int, url: str) -> StoredImage:
        response = self._open(index, url)
        try:
            stored = self._store(job_id, index, response)
        except BaseException:
            response.close()  # the body may be unread: the connection cannot be reused
            raise
        response.release_conn()
        return stored

    def _store(self, job_id: str, index: int, response: BaseHTTPResponse) -> StoredImage:
        if response.status != 200:
            raise ImageDownloadError(f"image {index}: the upstream answered {response.status}")
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self._settings.max_image_bytes:
            raise ImageRejectedError(
                f"image {index} is larger than {self._settings.max_image_bytes} bytes"
            )
        chunks = response.stream(CHUNK_BYTES)
        head = b""
        try:
            while len(head) < SNIFF_BYTES:
                chunk = next(chunks, b"")
                if not chunk:
                    break
                head += chunk
            content_type, extension = sniff_image_type(head)
            stream = _HashingStream(head, chunks, self._settings.max_image_bytes)
            key = image_key(job_id, index, extension)
            s3_client().upload_fileobj(
                cast("IO[bytes]", stream),  # it has the read() s3transfer needs
                self._settings.images_bucket_name,
                key,
                ExtraArgs={"ContentType": content_type},
                Config=TRANSFER,
            )
        except HTTPError as exc:
            raise ImageDownloadError(f"image {index}: {type(exc).__name__}") from exc
        return StoredImage(
            index=index,
            key=key,
            content_type=content_type,
            size=stream.size,
            sha256=stream.digest.hexdigest(),
        )

    def copy_stored(self, job_id: str, images: list[StoredImage]) -> list[StoredImage]:
        """Another job's stored images, copied inside the bucket (no download) under this job's
        keys: the copies live as long as this job, whatever becomes of the originals."""
        bucket = self._settings.images_bucket_name
        copies = []
        for image in images:
            extension = image.key.rsplit(".", 1)[-1]
            key = image_key(job_id, image.index, extension)
            try:
                s3_client().copy_object(
                    Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": image.key}
                )
            except (ClientError, BotoCoreError) as exc:
                # The use case answers this by generating again; it never sees botocore.
                raise StoredImagesGoneError(f"image {image.index}: {exc}") from exc
            copies.append(image.model_copy(update={"key": key}))
        return copies

    def presigned_url(self, key: str) -> str:
        return s3_client().generate_presigned_url(
            "get_object",
            Params={"Bucket": self._settings.images_bucket_name, "Key": key},
            ExpiresIn=self._settings.presigned_url_ttl_seconds,
        )
