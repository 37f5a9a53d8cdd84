"""A ThreadingHTTPServer served from a daemon thread: what the fake upstream and the local HTTP
API share (start, stop, context manager, base URL)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self


class OwnedServer(ThreadingHTTPServer):
    """The server object handlers see as `self.server`; `owner` is the object they serve."""

    # Bursts of clients connect at once; the default backlog of 5 resets the rest.
    request_queue_size = 128
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], owner: Any
    ) -> None:
        self.owner = owner
        super().__init__(address, handler)


class BackgroundServer:
    """Subclasses set `handler_class` (and `thread_name`); handlers reach the subclass instance
    as `self.server.owner`."""

    handler_class: type[BaseHTTPRequestHandler]
    thread_name = "http-server"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._server: OwnedServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        """Bind and serve in a daemon thread; returns self."""
        if self._server is not None:
            raise RuntimeError(f"{self.thread_name} already started")
        server = OwnedServer((self.host, self.port), self.handler_class, self)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=self.thread_name,
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server (the real port when started on 0)."""
        if self._server is None:
            raise RuntimeError(f"{self.thread_name} not started")
        host, port = self._server.server_address[:2]
        host = str(host)
        if host in ("0.0.0.0", "", "::"):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"
