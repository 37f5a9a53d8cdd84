"""Benchmark 1: the store step's memory — `ImageStore.copy_one` (streams the download into S3
through a hashing reader) versus the naive `requests.get(url).content` + `put_object`.

Both copy the same synthetic "PNG" (the PNG signature, then random bytes) from a local
ThreadingHTTPServer into an S3 bucket. Peak Python memory is measured with tracemalloc (only
allocations made during the copy; tracemalloc is started and stopped around each one) and wall
time in separate, untraced runs. Naive and streaming run side by side, alternating which goes
first, `repeats` times; medians are printed.

Two S3 back ends:
- moto in-process (`mock_aws`): what the brief asks for. moto's own copies of the request body
  and of the stored object are Python allocations in this process, so they are counted on both
  sides;
- a moto server in a subprocess: tracemalloc then sees only the copy's own allocations (the
  HTTP download, s3transfer's buffers, botocore's request), i.e. what the Lambda function
  itself would hold.
"""

from __future__ import annotations

import gc
import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import boto3
import pytest
import requests
from moto import mock_aws

from tests.bench._report import MIB, median, mib, note, table, title

SIZES_MIB = (1, 8, 20)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BUCKET = "bench-images"
JOB_ID = "bench-job"


# --------------------------------------------------------------------------- image server


class _ImageServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, images: dict[str, bytes]) -> None:
        self.images = images
        super().__init__(("127.0.0.1", 0), _ImageHandler)


class _ImageHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""

    def do_GET(self) -> None:
        data = cast(_ImageServer, self.server).images.get(self.path)
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def image_server(sizes_mib: tuple[int, ...]) -> Iterator[str]:
    """Serve /<n>mib.png for every size; yields the base URL."""
    images = {
        f"/{size}mib.png": PNG_SIGNATURE + os.urandom(size * MIB - len(PNG_SIGNATURE))
        for size in sizes_mib
    }
    server = _ImageServer(images)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.daemon = True
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host!s}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --------------------------------------------------------------------------- S3 back ends


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def moto_in_process() -> Iterator[None]:
    with mock_aws():
        yield


@contextmanager
def moto_subprocess(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A moto server in its own process; boto3 reaches it through AWS_ENDPOINT_URL."""
    port = _free_port()
    process = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{endpoint}/moto-api/", timeout=1)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the moto server did not start") from None
                time.sleep(0.1)
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        yield
    finally:
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


# --------------------------------------------------------------------------- the two copies


def _configure(monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings the store reads, then fresh settings and clients."""
    from tests.support.caches import clear_all

    for key, value in {
        "JOBS_TABLE_NAME": "bench-jobs",
        "IMAGES_BUCKET_NAME": BUCKET,
        "ALLOW_INSECURE_DOWNLOADS": "true",
        "DOWNLOAD_ALLOWED_HOSTS": "127.0.0.1",
        "MAX_IMAGE_BYTES": str(64 * MIB),
    }.items():
        monkeypatch.setenv(key, value)
    clear_all()


def naive_copy(url: str) -> int:
    """Whole image in memory, then one PutObject (sha256 too, so both do the same work)."""
    from imagegateway.adapters.aws_clients import s3_client

    content = requests.get(url, timeout=60).content
    hashlib.sha256(content).hexdigest()
    s3_client().put_object(
        Bucket=BUCKET, Key=f"naive/{JOB_ID}/0.png", Body=content, ContentType="image/png"
    )
    return len(content)


def streaming_copy(url: str) -> int:
    from imagegateway.adapters.image_store import ImageStore

    return ImageStore().copy_one(JOB_ID, 0, url).size


def peak_bytes(action: Callable[[], int]) -> int:
    """Peak of the Python allocations made during `action` (what existed before is excluded)."""
    gc.collect()
    tracemalloc.start()
    try:
        action()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak


def wall_seconds(action: Callable[[], int]) -> float:
    gc.collect()
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


@dataclass
class Samples:
    peak: dict[str, list[int]] = field(default_factory=lambda: {"naive": [], "streaming": []})
    wall: dict[str, list[float]] = field(default_factory=lambda: {"naive": [], "streaming": []})


def measure_size(url: str, repeats: int) -> Samples:
    copies: dict[str, Callable[[], int]] = {
        "naive": lambda: naive_copy(url),
        "streaming": lambda: streaming_copy(url),
    }
    for copy in copies.values():  # warm-up: imports, connection pools, bucket metadata
        copy()
    samples = Samples()
    for repeat in range(repeats):
        order = ["naive", "streaming"] if repeat % 2 == 0 else ["streaming", "naive"]
        for name in order:
            samples.peak[name].append(peak_bytes(copies[name]))
        for name in order:
            samples.wall[name].append(wall_seconds(copies[name]))
    return samples


def run_backend(
    label: str,
    backend: Callable[[], Any],
    base_url: str,
    repeats: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with backend():
        _configure(monkeypatch)
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        rows: list[list[object]] = []
        for size in SIZES_MIB:
            samples = measure_size(f"{base_url}/{size}mib.png", repeats)
            naive_peak = median(samples.peak["naive"])
            stream_peak = median(samples.peak["streaming"])
            naive_wall = median(samples.wall["naive"])
            stream_wall = median(samples.wall["streaming"])
            rows.append(
                [
                    size,
                    mib(naive_peak),
                    mib(stream_peak),
                    f"{naive_peak / stream_peak:.2f}x",
                    f"{stream_peak / (size * MIB):.2f}",
                    f"{naive_wall * 1000:.0f}",
                    f"{stream_wall * 1000:.0f}",
                    f"{stream_wall / naive_wall:.2f}x",
                    f"{min(samples.peak['streaming']) / MIB:.1f}-"
                    f"{max(samples.peak['streaming']) / MIB:.1f}",
                ]
            )
    print()
    print(f"S3 back end: {label}")
    table(
        [
            "image MiB",
            "naive peak MiB",
            "stream peak MiB",
            "naive/stream",
            "stream peak/size",
            "naive ms",
            "stream ms",
            "stream/naive time",
            "stream peak range",
        ],
        rows,
        indent=2,
    )


def run_store_memory_bench(repeats: int = 5) -> None:
    title("1. Store step: peak Python memory (tracemalloc) and wall time, naive vs streaming")
    note(
        "naive = requests.get(url).content + sha256 + put_object; "
        "streaming = ImageStore.copy_one (64 KiB chunks, TransferConfig threshold 8 MiB)"
    )
    note(f"median of {repeats} side-by-side runs per cell (order alternated); wall time from")
    note("separate untraced runs; the image server is a local ThreadingHTTPServer;")
    note("stream peak/size = streaming peak / image size; range = min-max over the runs")
    monkeypatch = pytest.MonkeyPatch()
    try:
        with image_server(SIZES_MIB) as base_url:
            run_backend(
                "moto in-process (mock_aws): moto's own copies are counted too",
                moto_in_process,
                base_url,
                repeats,
                monkeypatch,
            )
            run_backend(
                "moto server in a subprocess: only the copy's own allocations",
                lambda: moto_subprocess(monkeypatch),
                base_url,
                repeats,
                monkeypatch,
            )
    finally:
        monkeypatch.undo()
        from tests.support.caches import clear_all

        clear_all()
