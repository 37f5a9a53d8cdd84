"""Webhook receivers on 127.0.0.1 that misbehave at the socket level, for tests that must show a
delivery attempt ends at its deadline whatever the receiver does.

A `SlowReceiver` reads the whole request, then, per `mode`:
- "dribble": sends its status line and headers one byte at a time, forever (every byte well
  inside any per-read timeout, so only a wall-clock deadline ends the attempt);
- "silent": never answers at all;
- "endless-body": sends `200 OK` headers at once, then an endless body.
It gives up on a connection after `give_up_after` seconds (so a test of a client without a
deadline fails on its timing instead of hanging) and records, per connection, when it came and
when the client went away.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Mode = Literal["dribble", "silent", "endless-body"]
_ENDLESS_STATUS = b"HTTP/1.1 200 OK\r\n" + b"X-Padding: " + b"a" * 64


@dataclass
class Visit:
    """One connection: when it was accepted, the request's head, and when the client left."""

    accepted_at: float
    request_head: bytes = b""
    left_at: float | None = None

    @property
    def held_seconds(self) -> float | None:
        return None if self.left_at is None else self.left_at - self.accepted_at


@dataclass
class SlowReceiver:
    mode: Mode = "dribble"
    byte_interval: float = 0.05
    give_up_after: float = 30.0
    visits: list[Visit] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self._stop = threading.Event()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.getsockname()[1]}/hooks/slow"

    def close(self) -> None:
        self._stop.set()
        self._server.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._server.accept()
            except OSError:
                return
            visit = Visit(accepted_at=time.monotonic())
            with self._lock:
                self.visits.append(visit)
            threading.Thread(target=self._serve, args=(connection, visit), daemon=True).start()

    def _serve(self, connection: socket.socket, visit: Visit) -> None:
        with connection:
            try:
                visit.request_head = _read_request(connection)
                self._answer(connection, visit)
            except OSError:
                pass  # the client went away: what the tests wait for
            visit.left_at = time.monotonic()

    def _answer(self, connection: socket.socket, visit: Visit) -> None:
        ends = visit.accepted_at + self.give_up_after
        if self.mode == "silent":
            # Waits for the client to hang up (recv answers b"" then) or for the give-up time.
            connection.settimeout(max(0.0, ends - time.monotonic()))
            while connection.recv(1024):
                pass
            return
        if self.mode == "endless-body":
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n")
        stream = _endless(self.mode)
        while time.monotonic() < ends and not self._stop.is_set():
            connection.sendall(next(stream))
            time.sleep(self.byte_interval)


def _endless(mode: Mode) -> Iterator[bytes]:
    """Byte after byte of a head that never ends (dribble), or chunks of a body (endless-body)."""
    if mode == "endless-body":
        while True:
            yield b"x" * 1024
    for byte in _ENDLESS_STATUS:
        yield bytes([byte])
    while True:
        for byte in b"\r\nX-More: " + b"b" * 32:
            yield bytes([byte])


def _read_request(connection: socket.socket) -> bytes:
    """The request's head and its Content-Length body, read whole (as a real receiver would)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(4096)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = connection.recv(4096)
        if not chunk:
            break
        body += chunk
    return head


Delivery = tuple[dict[str, str], bytes]  # (headers, lower-cased; body) of one POST


@contextmanager
def recording_receiver(path: str) -> Iterator[tuple[str, list[Delivery]]]:
    """A webhook receiver on a free local port that answers every POST 204 and records it:
    its URL (ending in `path`) and the list of deliveries, in arrival order."""
    received: list[Delivery] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{path}", received
    finally:
        server.shutdown()
        server.server_close()
