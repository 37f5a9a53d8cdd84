"""One HTTP attempt that ends by a wall-clock deadline, whatever the other side does.

urllib3's timeouts bound each socket operation: a peer that sends its answer a byte at a time,
each byte inside the read timeout, holds a request for as long as it likes. Here a timer shuts
the attempt's socket down at its deadline, which ends any send or read blocked on it at once.
The TCP connect and the TLS handshake come before there is a socket to watch; the connect
timeout bounds each of them (CPython bounds a whole handshake by the socket's timeout), so the
caller gives them no more than what is left of the attempt between them.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any

from urllib3 import HTTPConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection

from imagegateway.adapters.downloads import DownloadTarget, pinned_pool


class AttemptDeadline:
    """The wall-clock end of one attempt. A read timeout bounds each read, not the answer: a
    receiver that sends its status line a byte at a time never trips it. So at the deadline a
    timer shuts down every socket the attempt watches, which ends any send or read blocked on
    it at once (shutdown, not close: the socket stays its owner's to close)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends_at = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self.expire)
        self._timer.daemon = True

    def remaining(self) -> float:
        return max(0.0, self.ends_at - time.monotonic())

    def watch(self, sock: socket.socket | None) -> None:
        """Shut `sock` at the deadline (at once, if it has passed)."""
        if sock is None:
            return
        with self._lock:
            if not self.expired:
                self._sockets.append(sock)
                return
        _shut(sock)

    def met(self) -> bool:
        """Stops the watch; whether it stopped before the deadline. Past it, an answer that
        seemed to end may have been cut by the shutdown (headers end at the connection's end)."""
        self._timer.cancel()
        with self._lock:
            self._sockets = []
            return not self.expired

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _shut(sock)

    def __enter__(self) -> AttemptDeadline:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()


def _shut(sock: socket.socket) -> None:
    # The plain socket's shutdown, even for TLS: SSLSocket's own drops its TLS state, which the
    # thread blocked in a read is still using.
    # OSError: already closed, or never connected: nothing left to end.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _WatchedHTTPConnection(HTTPConnection):
    """A connection whose socket its attempt's deadline shuts once it is connected (for TLS,
    once the handshake is done: the connect timeout bounds it)."""

    def __init__(self, *args: Any, deadline: AttemptDeadline, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadline = deadline

    def connect(self) -> None:
        super().connect()
        self.deadline.watch(self.sock)


class _WatchedHTTPSConnection(_WatchedHTTPConnection, HTTPSConnection):
    """The same for TLS (HTTPSConnection's connect, then the watch)."""


def watched_pool(
    target: DownloadTarget, deadline: AttemptDeadline, *, ca_certs: str
) -> HTTPConnectionPool:
    """A pool for one attempt, pinned to the target's checked address (downloads.py), whose
    connections its deadline watches. No retries: the caller decides when to try again."""
    pool = pinned_pool(
        target, target.addresses[0], ca_certs=ca_certs, maxsize=1, retries=False, deadline=deadline
    )
    pool.ConnectionCls = (
        _WatchedHTTPSConnection if target.scheme == "https" else _WatchedHTTPConnection
    )
    return pool
