"""What the store step agrees to fetch, and how it types what it fetched."""

from __future__ import annotations

import pytest

from imagegateway.errors import ImageRejectedError
from imagegateway.images import (
    _HashingStream,
    check_download_url,
    host_allowed,
    image_key,
    sniff_image_type,
)
from imagegateway.settings import Settings

DEPLOYED = Settings(jobs_table_name="jobs", images_bucket_name="images")
LOCAL = DEPLOYED.model_copy(
    update={"allow_insecure_downloads": True, "download_allowed_hosts": "127.0.0.1"}
)


def public(host: str) -> list[str]:
    return ["93.184.216.34"]


@pytest.mark.parametrize(
    "url",
    [
        "https://cdn.imagepipeline.io/a/0.png",
        "https://imagepipeline.io/a/0.png",
        "https://CDN.ImagePipeline.io./a/0.png",
    ],
)
def test_https_urls_on_allowed_public_hosts_pass(url: str) -> None:
    check_download_url(url, DEPLOYED, resolve=public)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://cdn.imagepipeline.io/0.png", "http"),
        ("file:///etc/passwd", "file"),
        ("ftp://cdn.imagepipeline.io/0.png", "ftp"),
        ("https://evil.example.com/0.png", "not an allowed host"),
        ("https://imagepipeline.io.evil.com/0.png", "not an allowed host"),
        ("https://169.254.169.254/latest/meta-data/", "not an allowed host"),
        ("https:///0.png", "no host"),
    ],
)
def test_other_schemes_and_hosts_are_refused(url: str, reason: str) -> None:
    with pytest.raises(ImageRejectedError, match=reason):
        check_download_url(url, DEPLOYED, resolve=public)


@pytest.mark.parametrize(
    "address", ["169.254.169.254", "127.0.0.1", "10.0.0.7", "192.168.1.1", "::1", "fd00::1"]
)
def test_an_allowed_host_resolving_to_a_private_address_is_refused(address: str) -> None:
    # Given an allowed name that resolves to the metadata service or another internal address
    # When it is checked for download
    # Then it is refused, naming the address
    with pytest.raises(ImageRejectedError, match="resolves to"):
        check_download_url(
            "https://cdn.imagepipeline.io/0.png", DEPLOYED, resolve=lambda host: [address]
        )


def test_the_local_stack_may_fetch_plain_http_from_loopback() -> None:
    check_download_url("http://127.0.0.1:8081/images/x/0.png", LOCAL, resolve=public)
    with pytest.raises(ImageRejectedError):
        check_download_url("http://10.0.0.1/0.png", LOCAL, resolve=public)


def test_host_patterns() -> None:
    assert host_allowed("a.b.example.com", ("*.example.com",))
    assert not host_allowed("example.com", ("*.example.com",))
    assert host_allowed("anything", ("*",))


@pytest.mark.parametrize(
    ("head", "content_type", "extension"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0d", "image/png", "png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "image/jpeg", "jpg"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp", "webp"),
    ],
)
def test_the_type_comes_from_the_bytes(head: bytes, content_type: str, extension: str) -> None:
    assert sniff_image_type(head) == (content_type, extension)


@pytest.mark.parametrize("head", [b"<html><body>", b"GIF89a......", b"RIFF....WAVE", b""])
def test_anything_else_is_not_an_image(head: bytes) -> None:
    with pytest.raises(ImageRejectedError):
        sniff_image_type(head)


def test_keys_are_deterministic_per_job_and_index() -> None:
    assert image_key("job-1", 2, "png") == "jobs/job-1/2.png"


def test_the_stream_hashes_counts_and_caps() -> None:
    stream = _HashingStream(b"ab", iter([b"cd", b"ef"]), max_bytes=6)
    assert stream.read(3) + stream.read() == b"abcdef"
    assert stream.size == 6
    capped = _HashingStream(b"ab", iter([b"cdefg"]), max_bytes=6)
    with pytest.raises(ImageRejectedError, match="larger than 6 bytes"):
        capped.read()


def test_the_stream_serves_reads_of_any_size_across_chunks() -> None:
    # Given chunks of uneven sizes
    stream = _HashingStream(b"abc", iter([b"d", b"efghij", b"", b"k"]), max_bytes=100)
    # When it is read in twos
    reads = [stream.read(2) for _ in range(7)]
    # Then every byte comes once, in order, and the end reads empty
    assert reads == [b"ab", b"cd", b"ef", b"gh", b"ij", b"k", b""]
    assert stream.size == 11
