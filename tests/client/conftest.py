"""The client's tests: a small fake gateway on a free local port (threading http.server) that
records every request and answers what each test scripts, and an environment with no
credentials unless a test sets some."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

# Every variable the client or botocore's credential chain reads.
CLEARED = (
    "IMAGEGATEWAY_URL",
    "IMAGEGATEWAY_API_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
)


@pytest.fixture(autouse=True)
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No API key, and nothing botocore could find (no env keys, files, or instance role)."""
    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@dataclass
class Seen:
    """One request the fake gateway received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    body: bytes
    target: str  # path and query as sent


@dataclass
class Reply:
    status: int
    body: Any = None  # JSON-encoded unless bytes
    headers: dict[str, str] = field(default_factory=dict)


Route = Callable[[Seen], Reply]


def png_bytes(tag: int) -> bytes:
    """Some bytes that start like a PNG (the client does not decode images)."""
    return b"\x89PNG\r\n\x1a\n" + bytes([tag]) * (100 + tag)


@dataclass
class FakeGateway:
    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    routes: dict[tuple[str, str], Route] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)

    def on(self, method: str, path: str, route: Route | Reply) -> None:
        self.routes[(method, path)] = route if callable(route) else (lambda seen: route)

    def requests_to(self, path_prefix: str) -> list[Seen]:
        return [seen for seen in self.seen if seen.path.startswith(path_prefix)]

    def image(self, name: str, data: bytes) -> dict[str, Any]:
        """Serve `data` at /files/<name>; the job view's image entry for it."""
        self.files[name] = data
        return {
            "url": f"{self.url}/files/{name}",
            "content_type": "image/png",
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }

    def job(
        self,
        job_id: str = "job-1",
        *,
        kind: str = "text2image",
        pending_polls: int = 1,
        images: int = 1,
        failure: tuple[str, str] | None = None,
    ) -> None:
        """A job's life: the submit answers 202 PENDING; its status route answers PENDING
        `pending_polls` times, then SUCCESS with `images` images (or FAILURE)."""
        self.on("POST", f"/sd/{kind}/v1", Reply(202, {"status": "PENDING", "id": job_id}))
        polls = [0]
        done: dict[str, Any] = {"status": "SUCCESS", "id": job_id}
        if failure is None:
            entries = [self.image(f"{job_id}-{n}.png", png_bytes(n)) for n in range(images)]
            done |= {
                "download_urls": [entry["url"] for entry in entries],
                "images": entries,
                "timings": {"created_at": "2026-01-01T00:00:00Z", "total_seconds": 1.5},
            }
        else:
            done |= {"status": "FAILURE", "error_code": failure[0], "error": failure[1]}

        def status(seen: Seen) -> Reply:
            polls[0] += 1
            if polls[0] <= pending_polls:
                return Reply(200, {"status": "PENDING", "id": job_id})
            return Reply(200, done)

        self.on("GET", f"/sd/{kind}/v1/status/{job_id}", status)

    def answer(self, seen: Seen) -> Reply:
        if seen.method == "GET" and seen.path.startswith("/files/"):
            data = self.files.get(seen.path.removeprefix("/files/"))
            return Reply(200, data, {"Content-Type": "image/png"}) if data else Reply(404, b"")
        route = self.routes.get((seen.method, seen.path))
        if route is None:
            return Reply(404, {"status": "FAILURE", "error": "no such job or route"})
        return route(seen)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        fake: FakeGateway = self.server.fake  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        seen = Seen(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            target=self.path,
        )
        fake.seen.append(seen)
        reply = fake.answer(seen)
        data = (
            reply.body
            if isinstance(reply.body, bytes)
            else b""
            if reply.body is None
            else json.dumps(reply.body).encode()
        )
        self.send_response(reply.status)
        headers = {"Content-Type": "application/json", **reply.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = _serve
    do_POST = _serve


@pytest.fixture
def fake() -> Iterator[FakeGateway]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    gateway = FakeGateway()
    server.fake = gateway  # type: ignore[attr-defined]
    gateway.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    yield gateway
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
