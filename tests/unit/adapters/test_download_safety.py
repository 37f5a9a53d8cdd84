"""What the store step agrees to fetch, and how it types what it fetched."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from imagegateway.adapters.downloads import check_download_url, host_allowed
from imagegateway.adapters.image_store import _HashingStream, image_key, sniff_image_type
from imagegateway.domain.errors import ImageRejectedError
from imagegateway.platform.observability import logger
from imagegateway.platform.settings import Settings

DEPLOYED = Settings(jobs_table_name="jobs", images_bucket_name="images")
LOCAL = DEPLOYED.model_copy(
    update={"allow_insecure_downloads": True, "download_allowed_hosts": ("127.0.0.1",)}
)


def public(host: str) -> list[str]:
    return ["93.184.216.34"]


@pytest.fixture
def warnings_logged() -> Iterator[list[logging.LogRecord]]:
    """Every record the gateway's logger writes during the test."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.DEBUG)
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


@pytest.mark.parametrize(
    "url",
    [
        "https://cdn.imagepipeline.io/a/0.png",
        "https://imagepipeline.io/a/0.png",
        "https://CDN.ImagePipeline.io./a/0.png",
        "https://cdn.imagepipeline.io:443/a/0.png",
        "HTTPS://cdn.imagepipeline.io/a/0.png?sig=a%2Fb&n=1#top",
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
        ("//cdn.imagepipeline.io/0.png", "no scheme"),
        ("https://evil.example.com/0.png", "not an allowed host"),
        ("https://imagepipeline.io.evil.com/0.png", "not an allowed host"),
        ("https://169.254.169.254/latest/meta-data/", "not an allowed host"),
        ("https:///0.png", "no host"),
    ],
)
def test_other_schemes_and_hosts_are_refused(url: str, reason: str) -> None:
    with pytest.raises(ImageRejectedError, match=reason):
        check_download_url(url, DEPLOYED, resolve=public)


def test_a_backslash_cannot_hide_the_real_host() -> None:
    # Given a URL that urllib.parse reads as host cdn.imagepipeline.io (allowed) while urllib3,
    # which makes the connection, ends the authority at the backslash: host attacker.example
    url = "https://attacker.example\\@cdn.imagepipeline.io/x.png"
    # When it is checked for download
    # Then it is refused, whatever the resolver says
    with pytest.raises(ImageRejectedError, match="backslash"):
        check_download_url(url, DEPLOYED, resolve=public)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://cdn.imagepipeline.io\\@attacker.example/x.png", "backslash"),
        ("https://cdn.imagepipeline.io/a\\b.png", "backslash"),
        ("https://a@cdn.imagepipeline.io/0.png", "credentials"),
        ("https://user:pw@cdn.imagepipeline.io/0.png", "credentials"),
        ("https://@cdn.imagepipeline.io/0.png", "credentials"),
        ("https://cdn.imagepipeline.io:443@attacker.example/0.png", "credentials"),
        ("https://cdn.imagepipeline.io:8443/0.png", "port"),
        ("https://cdn.imagepipeline.io:80/0.png", "port"),
        ("https://cdn.imagepipeline.io:99999/0.png", "malformed"),
        ("https://cdn.imagepipeline.io:443:80/0.png", "malformed"),
        ("https://cdn%2eimagepipeline.io/0.png", "malformed"),
        ("https://[cdn.imagepipeline.io]/0.png", "malformed"),
        ("https://\uff43\uff44\uff4e.imagepipeline.io/0.png", "malformed"),  # fullwidth "cdn"
        ("https://cdn.imagepipeline.io/0 .png", "whitespace or control"),
        (" https://cdn.imagepipeline.io/0.png", "whitespace or control"),
        ("https://cdn.imagepipeline.io\t/0.png", "whitespace or control"),
        ("https://cdn.imagepipeline.io/0.png\r\nX-Injected: 1", "whitespace or control"),
        ("https://cdn.imagepipeline.io/\x000.png", "whitespace or control"),
        ("https://cdn.imagepipeline.io/\x7f.png", "whitespace or control"),
        ("https://cdn.imagepipeline.io/\u00850.png", "whitespace or control"),
    ],
)
def test_ambiguous_urls_credentials_and_other_ports_are_refused(url: str, reason: str) -> None:
    with pytest.raises(ImageRejectedError, match=reason):
        check_download_url(url, DEPLOYED, resolve=public)


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",
        "127.0.0.1",
        "10.0.0.7",
        "192.168.1.1",
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",  # noqa: S104  (an address it resolves to, not a bind)
        "224.0.0.251",  # multicast
        "::1",
        "fd00::1",
        "fe80::1",
        "::ffff:10.0.0.7",  # IPv4-mapped
        "64:ff9b::a00:7",  # NAT64 of 10.0.0.7
        "2002:a00:7::1",  # 6to4 of 10.0.0.7
    ],
)
def test_an_allowed_host_resolving_to_a_private_address_is_refused(
    address: str, warnings_logged: list[logging.LogRecord]
) -> None:
    # Given an allowed name that resolves to the metadata service or another internal address
    # When it is checked for download
    with pytest.raises(ImageRejectedError, match="does not resolve to a public address") as refused:
        check_download_url(
            "https://cdn.imagepipeline.io/0.png", DEPLOYED, resolve=lambda host: [address]
        )
    # Then the caller's message does not name the address; the operator's log line does
    assert address not in str(refused.value)
    assert any(address in json.dumps(record.__dict__, default=str) for record in warnings_logged)


@pytest.mark.parametrize("address", ["2606:2800:220:1::1", "64:ff9b::5db8:d822"])
def test_public_ipv6_addresses_pass(address: str) -> None:
    # (the second is the NAT64 form of 93.184.216.34)
    target = check_download_url(
        "https://cdn.imagepipeline.io/0.png", DEPLOYED, resolve=lambda host: [address]
    )
    assert target.addresses == (address,)


def test_one_private_address_among_public_ones_is_enough_to_refuse() -> None:
    with pytest.raises(ImageRejectedError, match="does not resolve to a public address"):
        check_download_url(
            "https://cdn.imagepipeline.io/0.png",
            DEPLOYED,
            resolve=lambda host: ["93.184.216.34", "10.0.0.7"],
        )


def test_the_checked_target_carries_the_addresses_to_connect_to() -> None:
    target = check_download_url(
        "https://CDN.imagepipeline.io.:443/a/0.png?x=1#f",
        DEPLOYED,
        resolve=lambda host: ["93.184.216.34", "2606:2800:220:1::1"],
    )
    assert (target.scheme, target.host, target.port) == ("https", "cdn.imagepipeline.io", 443)
    assert target.request_target == "/a/0.png?x=1"
    assert target.addresses == ("93.184.216.34", "2606:2800:220:1::1")
    assert target.host_header == "cdn.imagepipeline.io"


def test_the_local_stack_may_fetch_plain_http_from_loopback() -> None:
    for port in ("8081", "59999"):
        target = check_download_url(
            f"http://127.0.0.1:{port}/images/x/0.png", LOCAL, resolve=public
        )
        assert target.addresses == ("127.0.0.1",)
        assert target.host_header == f"127.0.0.1:{port}"
    with pytest.raises(ImageRejectedError):
        check_download_url("http://10.0.0.1/0.png", LOCAL, resolve=public)
    for url in ("http://127.0.0.1:8081\\@10.0.0.1/0.png", "http://u:p@127.0.0.1:8081/0.png"):
        with pytest.raises(ImageRejectedError):
            check_download_url(url, LOCAL, resolve=public)


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
