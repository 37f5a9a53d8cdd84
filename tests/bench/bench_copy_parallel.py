"""Benchmark 5: storing 4 slow images versus 1 — `ImageStore.copy_all` against a local
ThreadingHTTPServer that waits 300 ms before answering each image (an upstream CDN's time to
first byte), into S3 in moto (in-process `mock_aws`). One copy of 4 images and one of 1 image
alternate (which goes first swaps every run) after a warm-up of each; medians.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.bench._report import median, note, table, title

FIRST_BYTE_SECONDS = 0.3
IMAGE_BYTES = 256 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BUCKET = "bench-copy"
TARGET_RATIO = 1.3


class _SlowServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, body: bytes) -> None:
        self.body = body
        super().__init__(("127.0.0.1", 0), _SlowHandler)


class _SlowHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _SlowServer

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""

    def do_GET(self) -> None:
        time.sleep(FIRST_BYTE_SECONDS)
        body = self.server.body
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def slow_image_server() -> Iterator[str]:
    server = _SlowServer(PNG_SIGNATURE + os.urandom(IMAGE_BYTES - len(PNG_SIGNATURE)))
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


def run_copy_bench(repeats: int = 5) -> None:
    from imagegateway.adapters.image_store import ImageStore
    from imagegateway.platform.settings import get_settings
    from tests.support.caches import clear_all

    title("5. Store step: 4 images with a 300 ms first byte each vs 1 (ImageStore.copy_all)")
    started = time.perf_counter()
    monkeypatch = pytest.MonkeyPatch()
    seconds: dict[int, list[float]] = {1: [], 4: []}
    try:
        with slow_image_server() as base_url, mock_aws():
            for key, value in {
                "JOBS_TABLE_NAME": "bench-jobs",
                "IMAGES_BUCKET_NAME": BUCKET,
                "ALLOW_INSECURE_DOWNLOADS": "true",
                "DOWNLOAD_ALLOWED_HOSTS": "127.0.0.1",
            }.items():
                monkeypatch.setenv(key, value)
            clear_all()
            boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
            workers = get_settings().image_download_workers
            store = ImageStore()
            runs = 0

            def copy(count: int) -> float:
                nonlocal runs
                runs += 1
                urls = [f"{base_url}/images/run{runs}/{i}.png" for i in range(count)]
                began = time.perf_counter()
                stored = store.copy_all(f"bench-copy-{runs}", urls)
                elapsed = time.perf_counter() - began
                if len(stored) != count:
                    raise RuntimeError(f"stored {len(stored)} of {count} images")
                return elapsed

            copy(1)  # warm-up: imports, clients, connection pools
            copy(4)
            for repeat in range(repeats):
                for count in (1, 4) if repeat % 2 == 0 else (4, 1):
                    seconds[count].append(copy(count))
    finally:
        monkeypatch.undo()
        clear_all()
    one, four = median(seconds[1]), median(seconds[4])
    ratio = four / one
    note(
        f"{IMAGE_BYTES // 1024} KiB PNGs from a local ThreadingHTTPServer that sleeps "
        f"{FIRST_BYTE_SECONDS * 1000:.0f} ms before each answer; S3 = moto in-process; "
        f"IMAGE_DOWNLOAD_WORKERS={workers}"
    )
    note(f"median of {repeats} side-by-side runs (order alternated) after one warm-up of each")
    print()
    table(
        ["copy_all", "median ms", "range ms", "vs 1 image", f"<= {TARGET_RATIO}x"],
        [
            [
                f"{count} image{'s' if count > 1 else ''}",
                f"{median(values) * 1000:.0f}",
                f"{min(values) * 1000:.0f}-{max(values) * 1000:.0f}",
                f"{median(values) / one:.2f}x",
                "-" if count == 1 else ("yes" if ratio <= TARGET_RATIO else "NO"),
            ]
            for count, values in seconds.items()
        ],
        indent=2,
    )
    note(
        f"fastest runs: 4 images {min(seconds[4]) * 1000:.0f} ms vs 1 image "
        f"{min(seconds[1]) * 1000:.0f} ms ({min(seconds[4]) / min(seconds[1]):.2f}x): the "
        "copies overlap; what a busy machine adds is CPU (hashing, moto's S3 in this process)"
    )
    note(f"section wall time {time.perf_counter() - started:.1f} s")
