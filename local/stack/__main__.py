"""`python -m local.stack` (`make run`): the local stack in the foreground, until Ctrl-C or
SIGTERM."""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType

from local.stack.console import Console, ready_line, redact_output, usage_hint
from local.stack.gateway_stack import LocalGatewayStack
from local.stack.process import PARENT_PID_VARIABLE
from local.stack.settings import StackError, StackSettings


def main() -> int:
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            os._exit(130)  # a second Ctrl-C while stopping: give up on a clean stop
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)

    console = Console()
    try:
        settings = StackSettings.from_environment(os.environ)
        if settings.upstream_api_key and len(settings.upstream_api_key) >= 6:
            redact_output(settings.upstream_api_key)
        stack = LocalGatewayStack(settings, console)
        urls = stack.start()
    except StackError as exc:
        console.line(f"[stack] error: {exc}")
        return 1
    try:
        console.line(ready_line(urls))
        for line in usage_hint(urls):
            console.line(line)
        parent = os.environ.get(PARENT_PID_VARIABLE, "")
        while not stop.wait(0.5):
            if parent.isdigit() and os.getppid() != int(parent):
                console.line("[stack] the process that started the stack is gone")
                break
        console.line("[stack] stopping")
    finally:
        stack.stop()
    console.line("[stack] stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
