"""`FakeUpstream`: the fake imagepipeline.io SD 1.5 API served over real HTTP, its jobs and its
routes (see the package's docstring).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, cast
from urllib.parse import urlsplit

from local.fake_upstream.answers import (
    Answer,
    JsonDict,
    RequestKind,
    Script,
    Scripted,
    failure,
    json_answer,
)
from local.fake_upstream.card import paint_test_card
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

KINDS = ("text2image", "image2image", "inpainting", "controlnet")
# The image URLs each kind needs on top of text2image's fields (reference/: the upstream
# fetches them itself, so only their presence is checked).
_REQUIRED_IMAGES: dict[str, tuple[str, ...]] = {
    "text2image": (),
    "image2image": ("init_image",),
    "inpainting": ("init_image", "mask_image"),
    "controlnet": (),
}
# ControlNet's lists: one item per ControlNet (the two required ones never empty).
_CONTROLNET_LISTS = (
    "init_images",
    "controlnet_weights",
    "starting_control_steps",
    "ending_control_steps",
)

DEFAULT_SIZE = 512
MAX_SIZE = 2048
MAX_SAMPLES = 4

_KIND = "|".join(KINDS)
_SUBMIT_RE = re.compile(rf"^/sd/({_KIND})/v1/?$")
_STATUS_RE = re.compile(rf"^/sd/({_KIND})/v1/status/([^/]+)/?$")
_IMAGE_RE = re.compile(r"^/images/([^/]+)/(\d+)\.png$")


# --------------------------------------------------------------------------- state


@dataclass
class _Job:
    id: str
    kind: str
    model_id: str
    width: int
    height: int
    samples: int
    submitted_at: float
    # The JSON body the job was submitted with, as received: `/__fake__/stats` reports it, its
    # test card paints it.
    request: JsonDict = field(default_factory=dict)
    # From the model's script at submit time: SUCCESS this long after submit, polls or not.
    completes_after: float | None = None
    status_checks: int = 0  # every status request for this job, scripted ones included
    polls: int = 0  # the unscripted ones: what pending_polls and the magic models count
    outcome: str | None = None  # "SUCCESS" or "FAILURE" once decided
    completed_at: float | None = None
    images: dict[int, bytes] = field(default_factory=dict)


def _int_param(params: JsonDict, name: str, default: int, low: int, high: int) -> int:
    value = params.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}]")
    return value


def _check_controlnets(params: JsonDict) -> None:
    """ControlNet's body as the upstream takes it: ControlNets, one conditioning image each,
    and the optional per-ControlNet lists empty or one item per ControlNet."""
    controlnets = params.get("controlnets")
    if not isinstance(controlnets, list) or not controlnets:
        raise ValueError("controlnets is required for controlnet")
    images = params.get("init_images")
    if not isinstance(images, list) or not images:
        raise ValueError("init_images is required for controlnet")
    for name in _CONTROLNET_LISTS:
        value = params.get(name)
        if value is not None and (
            not isinstance(value, list) or (value and len(value) != len(controlnets))
        ):
            raise ValueError(f"{name} must have one item per ControlNet")


class FakeUpstream(BackgroundServer):
    """In-process fake of the imagepipeline.io SD 1.5 API, served over real HTTP."""

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
        # One lock for all state; it is never held while sleeping or doing I/O.
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}
        self._scripts: dict[str, Script] = {}
        self._submits = 0
        self._status_checks = 0
        self._downloads = 0
        self._rejected_auth = 0
        self._submits_by_model: dict[str, int] = {}

    # ----------------------------------------------------------------- test hooks

    def stats(self) -> JsonDict:
        """The counters and per-job facts of ``GET /__fake__/stats``."""
        now = time.time()
        with self._lock:
            for job in self._jobs.values():
                self._settle(job, now)
            return {
                "submits": self._submits,
                "status_checks": self._status_checks,
                "downloads": self._downloads,
                "submits_by_model": dict(self._submits_by_model),
                "rejected_auth": self._rejected_auth,
                "jobs": {
                    job.id: {
                        "model_id": job.model_id,
                        "kind": job.kind,
                        "submitted_at": job.submitted_at,
                        "completed_at": job.completed_at,
                        "status_checks": job.status_checks,
                        "request": job.request,
                    }
                    for job in self._jobs.values()
                },
            }

    def reset(self) -> None:
        """Forget every job, counter and script."""
        with self._lock:
            self._jobs.clear()
            self._scripts.clear()
            self._submits = 0
            self._status_checks = 0
            self._downloads = 0
            self._rejected_auth = 0
            self._submits_by_model.clear()

    def script(self, spec: object) -> str:
        """Stage answers for one model id (the body of ``POST /__fake__/script``).

        ``spec`` is ``{"model_id", "submit": [ANSWER...], "status": [...], "images": [...],
        "completes_after_seconds": N}``, every key but ``model_id`` optional. It replaces any
        earlier script for that model id (unconsumed answers included). Each list is shared by
        all jobs of the model and consumed in order, one answer per request of its kind, in
        place of the fake's own answer; once empty, the fake behaves normally.

        ANSWER = ``{"code": 200, "headers": {}, "json": <any> | "body": "<text>",
        "delay_seconds": 0, "accept": false}``. ``{{id}}`` and ``{{base_url}}`` are replaced
        in every string of ``json``. A submit answer with ``accept`` true still creates the
        job (before its delay); without it, no job is created and ``{{id}}`` is a fresh id.
        Only requests that pass auth, and for submits the fake's own validation, consume
        answers. ``completes_after_seconds`` applies to jobs submitted from now on: they turn
        SUCCESS that long after their submit, instead of counting polls.

        Raises ``ValueError`` on an invalid spec; returns the model id.
        """
        model_id, parsed = Script.parse(spec)
        with self._lock:
            self._scripts[model_id] = parsed
        return model_id

    # ----------------------------------------------------------------- protocol

    def _check_auth(self, key: str | None) -> Answer | None:
        if key is not None and key == self.api_key:
            return None
        with self._lock:
            self._rejected_auth += 1
        return failure(401, "invalid or missing API-Key")

    def _next_scripted(self, model_id: str, kind: RequestKind) -> Scripted | None:
        """Pop the model's next scripted answer for this kind of request (lock held)."""
        script = self._scripts.get(model_id)
        if script is None or not script.answers[kind]:
            return None
        return script.answers[kind].popleft()

    def _urls(self, job: _Job) -> list[str]:
        base = self.base_url
        return [f"{base}/images/{job.id}/{i}.png" for i in range(job.samples)]

    def _success(self, job: _Job) -> Answer:
        return json_answer(
            200, {"status": "SUCCESS", "id": job.id, "download_urls": self._urls(job)}
        )

    @staticmethod
    def _settle(job: _Job, now: float) -> None:
        """Complete a time-based job whose time has come (lock held).

        ``completed_at`` is when it turned SUCCESS, not when someone noticed: that is the
        "upstream done" instant detection delays are measured from.
        """
        if job.outcome is None and job.completes_after is not None:
            done_at = job.submitted_at + job.completes_after
            if now >= done_at:
                job.outcome, job.completed_at = "SUCCESS", done_at

    def _poll(self, job: _Job, now: float) -> Answer | None:
        """Count one unscripted poll of a poll-based job; maybe decide it (lock held).

        Returns an error answer the magic model injects instead of the job's status.
        """
        if job.outcome is not None or job.completes_after is not None:
            return None
        job.polls += 1
        effective = job.polls
        if job.model_id == MODEL_FLAKY:
            if job.polls == 1:
                return Answer(500, b"internal error", content_type="text/plain")
            if job.polls == 2:
                return json_answer(
                    429, {"error": "too many requests"}, headers={"Retry-After": "1"}
                )
            effective = job.polls - 2
        if job.model_id == MODEL_FAILURE:
            if effective > 1:
                job.outcome = "FAILURE"
        elif job.model_id != MODEL_NEVER and effective > self.pending_polls:
            job.outcome = "SUCCESS"
        if job.outcome is not None:
            job.completed_at = now
        return None

    def _validate(self, kind: str, params: JsonDict) -> tuple[int, int, int]:
        """Width, height and samples of the images a submit the upstream would take makes
        (twice the size under Hi-res Fix or `upscale: "2x"`), or ValueError."""
        for name in _REQUIRED_IMAGES[kind]:
            value = params.get(name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} is required for {kind}")
        if kind == "controlnet":
            _check_controlnets(params)
        samples = _int_param(params, "samples", 1, 1, MAX_SAMPLES)
        if params.get("hires") is True and samples != 1:
            raise ValueError("hires makes one image per call: use samples 1")
        scale = 2 if params.get("hires") is True or params.get("upscale") == "2x" else 1
        return (
            _int_param(params, "width", DEFAULT_SIZE, 1, MAX_SIZE) * scale,
            _int_param(params, "height", DEFAULT_SIZE, 1, MAX_SIZE) * scale,
            samples,
        )

    def _submit(self, kind: str, body: bytes) -> Answer:
        with self._lock:
            self._submits += 1
        try:
            params = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            return failure(400, f"invalid JSON body: {exc}")
        if not isinstance(params, dict):
            return failure(400, "invalid JSON body: expected an object")

        model_id = params.get("model_id")
        if not isinstance(model_id, str) or not model_id:
            return json_answer(200, {"status": "FAILURE", "error": "model_id is required"})
        with self._lock:
            self._submits_by_model[model_id] = self._submits_by_model.get(model_id, 0) + 1
        if model_id == MODEL_REJECT:
            return json_answer(
                200, {"status": "FAILURE", "error": f"model_id '{model_id}' not found"}
            )
        # The upstream refuses a bad request in a 200 FAILURE body, as for fake-reject.
        try:
            width, height, samples = self._validate(kind, params)
        except ValueError as exc:
            return json_answer(200, {"status": "FAILURE", "error": str(exc)})

        now = time.time()
        with self._lock:
            # Consuming the answer and creating the job under one lock: a concurrent stats
            # call sees an accepted job as soon as its (possibly delayed) answer is chosen.
            scripted = self._next_scripted(model_id, "submit")
            job: _Job | None = None
            if scripted is None or scripted.accept:
                script = self._scripts.get(model_id)
                job = _Job(
                    id=str(uuid.uuid4()),
                    kind=kind,
                    model_id=model_id,
                    width=width,
                    height=height,
                    samples=samples,
                    submitted_at=now,
                    request=params,
                    completes_after=None if script is None else script.completes_after_seconds,
                )
                if model_id == MODEL_INSTANT and job.completes_after is None:
                    job.outcome, job.completed_at = "SUCCESS", now
                self._jobs[job.id] = job
        if scripted is not None:
            return scripted.render(job.id if job else str(uuid.uuid4()), self.base_url)
        assert job is not None  # no scripted answer, so the job was created above
        if job.outcome == "SUCCESS":
            return self._success(job)
        return json_answer(200, {"status": "PENDING", "id": job.id})

    def _status(self, kind: str, job_id: str) -> Answer:
        now = time.time()
        with self._lock:
            self._status_checks += 1
            job = self._jobs.get(job_id)
            # Another kind's route does not know the job, as with separate upstream services.
            if job is None or job.kind != kind:
                return failure(404, f"job '{job_id}' not found")
            job.status_checks += 1
            self._settle(job, now)
            scripted = self._next_scripted(job.model_id, "status")
            injected = None if scripted is not None else self._poll(job, now)
            outcome = job.outcome
        if scripted is not None:
            return scripted.render(job_id, self.base_url)
        if injected is not None:
            return injected
        if outcome == "SUCCESS":
            return self._success(job)
        if outcome == "FAILURE":
            return json_answer(200, {"status": "FAILURE", "id": job_id, "error": FAILURE_MESSAGE})
        return json_answer(200, {"status": "PENDING", "id": job_id})

    def _image(self, job_id: str, index: int) -> Answer:
        with self._lock:
            self._downloads += 1
            job = self._jobs.get(job_id)
            if job is None:
                return failure(404, "image not found")
            self._settle(job, time.time())
            scripted = self._next_scripted(job.model_id, "images")
            servable = (
                job.outcome == "SUCCESS"
                and job.model_id != MODEL_BROKEN_IMAGE
                and index < job.samples
            )
            data = job.images.get(index)
        if scripted is not None:
            return scripted.render(job_id, self.base_url)
        if not servable:
            return failure(404, "image not found")
        if data is None:
            # Rendered outside the lock: other requests need not wait for zlib.
            data = paint_test_card(
                job.request, kind=job.kind, width=job.width, height=job.height, index=index
            )
            with self._lock:
                job.images.setdefault(index, data)
        return Answer(200, data, content_type="image/png")

    def _script_hook(self, body: bytes) -> Answer:
        try:
            spec = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            return failure(400, f"invalid JSON body: {exc}")
        try:
            model_id = self.script(spec)
        except ValueError as exc:
            return failure(400, f"invalid script: {exc}")
        return json_answer(200, {"status": "OK", "model_id": model_id})

    def _handle(self, method: str, path: str, api_key: str | None, body: bytes) -> Answer:
        if path.startswith("/__fake__/"):
            if path == "/__fake__/stats" and method == "GET":
                return json_answer(200, self.stats())
            if path == "/__fake__/reset" and method == "POST":
                self.reset()
                return json_answer(200, {"status": "OK"})
            if path == "/__fake__/script" and method == "POST":
                return self._script_hook(body)
            return failure(404, "not found")
        if path.startswith("/sd/"):
            denied = self._check_auth(api_key)
            if denied is not None:
                return denied
            match = _SUBMIT_RE.match(path)
            if match:
                if method != "POST":
                    return failure(405, "method not allowed")
                return self._submit(match.group(1), body)
            match = _STATUS_RE.match(path)
            if match:
                if method != "GET":
                    return failure(405, "method not allowed")
                return self._status(match.group(1), match.group(2))
            return failure(404, "not found")
        match = _IMAGE_RE.match(path)
        if match and method == "GET":
            return self._image(match.group(1), int(match.group(2)))
        return failure(404, "not found")


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
            answer = failure(400, "malformed request body")
        else:
            fake = cast(FakeUpstream, cast(OwnedServer, self.server).owner)
            path = urlsplit(self.path).path
            answer = fake._handle(method, path, self.headers.get("API-Key"), body)
        if answer.delay_seconds > 0:
            # Only this request's thread sleeps, and no lock is held here.
            time.sleep(answer.delay_seconds)
        try:
            self.send_response(answer.code)
            if answer.content_type is not None:
                self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(answer.body)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            # The client gave up (typically during a scripted delay): nothing to answer.
            self.close_connection = True

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")


# Set here because the handler is defined after the server class.
FakeUpstream.handler_class = _Handler
