"""`python -m local.stack` as a child process (`StackProcess`), for `make demo` and the e2e
tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping

from local.aws.template import (
    REPO,
)
from local.stack.settings import StackError, StackUrls

PARENT_PID_VARIABLE = "LOCAL_STACK_PARENT_PID"
_READY = re.compile(r"\[stack\] ready gateway=(\S+) moto=(\S+) upstream=(\S+)")


class StackProcess:
    """`python -m local.stack` as a child process (for `make demo` and the e2e tests): started
    on free ports unless told otherwise, waited for until ready, stopped with SIGTERM.

    The child runs in its own session, so a Ctrl-C meant for the parent reaches it only as the
    parent's SIGTERM, and it stops by itself if the parent dies.
    """

    def __init__(
        self,
        environment: Mapping[str, str] | None = None,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        self.environment = {
            "GATEWAY_PORT": "0",
            "MOTO_PORT": "0",
            "FAKE_UPSTREAM_PORT": "0",
            **(environment or {}),
        }
        self.echo = echo
        self.lines: list[str] = []
        self.urls: StackUrls | None = None
        self.returncode: int | None = None
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._ready = threading.Event()

    def start(self, timeout: float = 60.0) -> StackUrls:
        env = {
            **os.environ,
            **self.environment,
            "PYTHONUNBUFFERED": "1",
            PARENT_PID_VARIABLE: str(os.getpid()),
        }
        self._process = subprocess.Popen(
            [sys.executable, "-m", "local.stack"],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, name="stack-output", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.1):
            if self._process.poll() is not None:
                self._reader.join(timeout=5)
                raise StackError(
                    f"the stack exited with {self._process.returncode} before it was ready:\n"
                    + self.output(last=30)
                )
            if time.monotonic() > deadline:
                self.stop()
                raise StackError(
                    f"the stack was not ready after {timeout:.0f} s:\n" + self.output(last=30)
                )
        assert self.urls is not None
        return self.urls

    def _read(self) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        for raw in self._process.stdout:
            line = raw.rstrip("\n")
            self.lines.append(line)
            if self.echo is not None:
                self.echo(line)
            found = _READY.search(line)
            if found and not self._ready.is_set():
                self.urls = StackUrls(*found.groups())
                self._ready.set()

    def output(self, last: int | None = None) -> str:
        lines = list(self.lines)
        return "\n".join(lines[-last:] if last else lines)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then wait (SIGKILL after `timeout`); returns the exit code."""
        process = self._process
        if process is None:
            return self.returncode or 0
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self._reader is not None:
            self._reader.join(timeout=5)
        self.returncode = process.returncode
        return process.returncode

    def __enter__(self) -> StackProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
