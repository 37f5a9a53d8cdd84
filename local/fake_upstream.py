"""Fake imagepipeline.io SD 1.5 text2image upstream (dev/test only, never deployed).

A real HTTP server speaking the upstream protocol:

- ``POST /sd/text2image/v1`` submits a job (header ``API-Key`` required),
- ``GET /sd/text2image/v1/status/{id}`` polls it,
- ``GET /images/{job_id}/{index}.png`` serves the generated images (no key needed),
- ``GET /__fake__/stats`` and ``POST /__fake__/reset`` are test hooks (no key needed).

Images are real, deterministic PNGs of the requested size and count. Test-mode behaviour
is chosen by magic ``model_id`` values (see ``MAGIC_MODELS``); any other model id answers
PENDING for ``pending_polls`` status checks, then SUCCESS.

Run it standalone with ``python -m local.fake_upstream [--port N] [--host H]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import signal
import struct
import sys
import threading
import uuid
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from types import FrameType
from typing import Any, cast
from urllib.parse import urlsplit

from local.http_server import BackgroundServer, OwnedServer

DEFAULT_API_KEY = "local-dev-key"
DEFAULT_PORT = 8081

MODEL_INSTANT = "fake-instant"
MODEL_FAILURE = "fake-failure"
MODEL_REJECT = "fake-reject"
MODEL_FLAKY = "fake-flaky"
MODEL_NEVER = "fake-never"
MODEL_BROKEN_IMAGE = "fake-broken-image"
MAGIC_MODELS = frozenset(
    {MODEL_INSTANT, MODEL_FAILURE, MODEL_REJECT, MODEL_FLAKY, MODEL_NEVER, MODEL_BROKEN_IMAGE}
)

FAILURE_MESSAGE = "fake-failure: the model crashed while sampling"

DEFAULT_SIZE = 512
MAX_SIZE = 2048
MAX_SAMPLES = 4

_SUBMIT_PATH = "/sd/text2image/v1"
_STATUS_RE = re.compile(r"^/sd/text2image/v1/status/([^/]+)/?$")
_IMAGE_RE = re.compile(r"^/images/([^/]+)/(\d+)\.png$")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLUMN_BANDS = 8
_ROW_STEPS = 64

JsonDict = dict[str, Any]


# --------------------------------------------------------------------------- images


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _band_bounds(length: int, bands: int) -> list[tuple[int, int]]:
    return [(b * length // bands, (b + 1) * length // bands) for b in range(bands)]


def make_png(width: int, height: int, seed: Any, prompt: Any, model_id: Any, index: int) -> bytes:
    """Render a valid 8-bit RGB PNG, deterministic in (seed, prompt, model_id, index).

    The picture is a set of vertical colour bands, each a vertical gradient between two
    colours derived from a hash of the inputs. Only ``min(height, 64)`` distinct rows are
    built, so a 1024x1024 image costs a few thousand byte operations plus zlib.
    """
    if width < 1 or height < 1:
        raise ValueError("width and height must be positive")
    key = json.dumps(
        {"seed": seed, "prompt": prompt, "model_id": model_id, "index": index},
        sort_keys=True,
        default=str,
    ).encode("utf-8")
    palette = hashlib.shake_256(hashlib.sha256(key).digest()).digest(_COLUMN_BANDS * 6)
    tops = [palette[c * 6 : c * 6 + 3] for c in range(_COLUMN_BANDS)]
    bottoms = [palette[c * 6 + 3 : c * 6 + 6] for c in range(_COLUMN_BANDS)]
    columns = _band_bounds(width, _COLUMN_BANDS)

    steps = min(height, _ROW_STEPS)
    patterns: list[bytes] = []
    for step in range(steps):
        t_num, t_den = step, max(steps - 1, 1)
        parts = [b"\x00"]  # filter type "None" for every scanline
        for band, (start, end) in enumerate(columns):
            if end <= start:
                continue
            top, bottom = tops[band], bottoms[band]
            colour = bytes(
                (top[ch] * (t_den - t_num) + bottom[ch] * t_num) // t_den for ch in range(3)
            )
            parts.append(colour * (end - start))
        patterns.append(b"".join(parts))

    raw = b"".join(patterns[y * steps // height] for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        _PNG_SIGNATURE
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(raw, 6))
        + _png_chunk(b"IEND", b"")
    )


# --------------------------------------------------------------------------- state


@dataclass
class _Job:
    id: str
    model_id: str
    prompt: Any
    seed: Any
    width: int
    height: int
    samples: int
    checks: int = 0
    outcome: str | None = None  # "SUCCESS" or "FAILURE" once decided
    images: dict[int, bytes] = field(default_factory=dict)


@dataclass
class _Answer:
    code: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def _json_answer(code: int, payload: JsonDict, headers: dict[str, str] | None = None) -> _Answer:
    return _Answer(code, json.dumps(payload).encode("utf-8"), headers=headers or {})


def _failure(code: int, error: str) -> _Answer:
    return _json_answer(code, {"status": "FAILURE", "error": error})


def _int_param(params: JsonDict, name: str, default: int, low: int, high: int) -> int:
    value = params.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}]")
    return value


class FakeUpstream(BackgroundServer):
    """In-process fake of the imagepipeline.io text2image API, served over real HTTP."""

    thread_name = "fake-upstream"

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        pending_polls: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.api_key = api_key
        self.pending_polls = (
            int(os.environ.get("FAKE_PENDING_POLLS", "2"))
            if pending_polls is None
            else pending_polls
        )
        super().__init__(host, port)
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}
        self._submits = 0
        self._status_checks = 0
        self._downloads = 0
        self._rejected_auth = 0
        self._submits_by_model: dict[str, int] = {}

    # ----------------------------------------------------------------- test hooks

    def stats(self) -> JsonDict:
        with self._lock:
            return {
                "submits": self._submits,
                "status_checks": self._status_checks,
                "downloads": self._downloads,
                "submits_by_model": dict(self._submits_by_model),
                "rejected_auth": self._rejected_auth,
            }

    def reset(self) -> None:
        with self._lock:
            self._jobs.clear()
            self._submits = 0
            self._status_checks = 0
            self._downloads = 0
            self._rejected_auth = 0
            self._submits_by_model.clear()

    # ----------------------------------------------------------------- protocol

    def _check_auth(self, key: str | None) -> _Answer | None:
        if key is not None and key == self.api_key:
            return None
        with self._lock:
            self._rejected_auth += 1
        return _failure(401, "invalid or missing API-Key")

    def _urls(self, job: _Job) -> list[str]:
        base = self.base_url
        return [f"{base}/images/{job.id}/{i}.png" for i in range(job.samples)]

    def _success(self, job: _Job) -> _Answer:
        return _json_answer(
            200, {"status": "SUCCESS", "id": job.id, "download_urls": self._urls(job)}
        )

    def _submit(self, body: bytes) -> _Answer:
        with self._lock:
            self._submits += 1
        try:
            params = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            return _failure(400, f"invalid JSON body: {exc}")
        if not isinstance(params, dict):
            return _failure(400, "invalid JSON body: expected an object")

        model_id = params.get("model_id")
        if isinstance(model_id, str) and model_id:
            with self._lock:
                self._submits_by_model[model_id] = self._submits_by_model.get(model_id, 0) + 1
        else:
            return _json_answer(200, {"status": "FAILURE", "error": "model_id is required"})
        if model_id == MODEL_REJECT:
            return _json_answer(
                200, {"status": "FAILURE", "error": f"model_id '{model_id}' not found"}
            )
        try:
            width = _int_param(params, "width", DEFAULT_SIZE, 1, MAX_SIZE)
            height = _int_param(params, "height", DEFAULT_SIZE, 1, MAX_SIZE)
            samples = _int_param(params, "samples", 1, 1, MAX_SAMPLES)
        except ValueError as exc:
            return _json_answer(200, {"status": "FAILURE", "error": str(exc)})

        job = _Job(
            id=str(uuid.uuid4()),
            model_id=model_id,
            prompt=params.get("prompt"),
            seed=params.get("seed"),
            width=width,
            height=height,
            samples=samples,
        )
        if model_id == MODEL_INSTANT:
            job.outcome = "SUCCESS"
        with self._lock:
            self._jobs[job.id] = job
        if job.outcome == "SUCCESS":
            return self._success(job)
        return _json_answer(200, {"status": "PENDING", "id": job.id})

    def _status(self, job_id: str) -> _Answer:
        with self._lock:
            self._status_checks += 1
            job = self._jobs.get(job_id)
            if job is None:
                return _failure(404, f"job '{job_id}' not found")
            job.checks += 1
            checks = job.checks
            if job.outcome is None:
                effective = checks
                if job.model_id == MODEL_FLAKY:
                    if checks == 1:
                        return _Answer(500, b"internal error", content_type="text/plain")
                    if checks == 2:
                        return _json_answer(
                            429, {"error": "too many requests"}, headers={"Retry-After": "1"}
                        )
                    effective = checks - 2
                if job.model_id == MODEL_FAILURE:
                    if effective > 1:
                        job.outcome = "FAILURE"
                elif job.model_id != MODEL_NEVER and effective > self.pending_polls:
                    job.outcome = "SUCCESS"
            outcome = job.outcome
        if outcome == "SUCCESS":
            return self._success(job)
        if outcome == "FAILURE":
            return _json_answer(200, {"status": "FAILURE", "id": job_id, "error": FAILURE_MESSAGE})
        return _json_answer(200, {"status": "PENDING", "id": job_id})

    def _image(self, job_id: str, index: int) -> _Answer:
        with self._lock:
            self._downloads += 1
            job = self._jobs.get(job_id)
            if (
                job is None
                or job.outcome != "SUCCESS"
                or job.model_id == MODEL_BROKEN_IMAGE
                or index >= job.samples
            ):
                return _failure(404, "image not found")
            data = job.images.get(index)
        if data is None:
            data = make_png(job.width, job.height, job.seed, job.prompt, job.model_id, index)
            with self._lock:
                job.images.setdefault(index, data)
        return _Answer(200, data, content_type="image/png")

    def _handle(self, method: str, path: str, api_key: str | None, body: bytes) -> _Answer:
        if path == "/__fake__/stats" and method == "GET":
            return _json_answer(200, self.stats())
        if path == "/__fake__/reset" and method == "POST":
            self.reset()
            return _json_answer(200, {"status": "OK"})
        if path.startswith("/sd/"):
            denied = self._check_auth(api_key)
            if denied is not None:
                return denied
            if path.rstrip("/") == _SUBMIT_PATH:
                if method != "POST":
                    return _failure(405, "method not allowed")
                return self._submit(body)
            match = _STATUS_RE.match(path)
            if match:
                if method != "GET":
                    return _failure(405, "method not allowed")
                return self._status(match.group(1))
            return _failure(404, "not found")
        match = _IMAGE_RE.match(path)
        if match and method == "GET":
            return self._image(match.group(1), int(match.group(2)))
        return _failure(404, "not found")


# --------------------------------------------------------------------------- HTTP


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeImagePipeline/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self, method: str) -> None:
        try:
            body = self._read_body() if method == "POST" else b""
        except ValueError:
            answer = _failure(400, "malformed request body")
        else:
            fake = cast(FakeUpstream, cast(OwnedServer, self.server).owner)
            path = urlsplit(self.path).path
            answer = fake._handle(method, path, self.headers.get("API-Key"), body)
        self.send_response(answer.code)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(answer.body)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")


# --------------------------------------------------------------------------- CLI


# Set here because the handler is defined after the server class.
FakeUpstream.handler_class = _Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local.fake_upstream",
        description="Fake imagepipeline.io SD 1.5 text2image upstream (dev/test only).",
    )
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("FAKE_UPSTREAM_PORT", str(DEFAULT_PORT)))
    )
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)

    api_key = os.environ.get("FAKE_UPSTREAM_API_KEY", DEFAULT_API_KEY)
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    fake = FakeUpstream(api_key=api_key, host=args.host, port=args.port).start()
    try:
        print(f"fake upstream listening on {fake.base_url}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
