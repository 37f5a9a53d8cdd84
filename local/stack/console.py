"""The stack's console output: one time-stamped line at a time (one per Lambda invocation), the
ready line and its usage hint, and the real API key redacted from everything printed.
"""

from __future__ import annotations

import io
import sys
import threading
from datetime import datetime
from typing import Any, TextIO

from local.aws.lambda_runtime import Invocation
from local.stack.settings import StackUrls


class Console:
    """Thread-safe, line-at-a-time output with a time stamp."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def line(self, text: str) -> None:
        stamp = datetime.now().strftime("%H:%M:%S.%f")[:-3]
        stream = self._stream or sys.stdout
        with self._lock:
            stream.write(f"{stamp} {text}\n")
            stream.flush()

    def invocation(self, call: Invocation) -> None:
        """One line per Lambda invocation: function, job, duration, outcome (and, for an HTTP
        request, its route and status)."""
        outcome = "ok" if call.error is None else f"error {type(call.error).__name__}"
        if call.error is not None and str(call.error):
            outcome += f": {str(call.error).splitlines()[0][:200]}"
        extra = ""
        if call.trigger != "invoke":
            # API Gateway answers 500 for a failed invocation, 200 for an answer without status.
            status: Any = 500
            if call.error is None:
                answer = call.result if isinstance(call.result, dict) else {}
                status = answer.get("statusCode", 200)
            extra = f"  {call.trigger} -> {status}"
        job = call.job_id or "-"
        self.line(
            f"[invoke] {call.function:<14} job={job:<36} {call.duration_ms:>6.0f} ms  "
            f"{outcome}{extra}"
        )


class _Redacting(io.TextIOBase):
    """A text stream that writes through, with a secret replaced by ***."""

    def __init__(self, target: TextIO, secret: str) -> None:
        self._target = target
        self._secret = secret

    def write(self, text: str) -> int:
        self._target.write(text.replace(self._secret, "***"))
        return len(text)

    def flush(self) -> None:
        self._target.flush()

    def isatty(self) -> bool:
        return self._target.isatty()


def redact_output(secret: str) -> None:
    """Belt and braces for the real API key: nothing this process prints can show it."""
    sys.stdout = _Redacting(sys.stdout, secret)
    sys.stderr = _Redacting(sys.stderr, secret)


def ready_line(urls: StackUrls) -> str:
    """The line that says the stack is up; tools parse the name=url pairs."""
    return f"[stack] ready gateway={urls.gateway} moto={urls.moto} upstream={urls.upstream}"


def usage_hint(urls: StackUrls) -> list[str]:
    return [
        "[stack] try it:",
        f"  curl -s {urls.gateway}/sd/text2image/v1 -H 'Content-Type: application/json' "
        "--data-binary @events/text2image_request.json",
        f"  curl -s {urls.gateway}/sd/text2image/v1/status/<id>",
        "  (requests run as the local account; header 'X-Local-Caller: <name>' runs one as "
        "user/<name>, and a queued message's 'LocalSender' attribute sends it as user/<name>)",
        "[stack] Ctrl-C stops everything",
    ]
