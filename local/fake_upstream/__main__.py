"""``python -m local.fake_upstream [--port N] [--host H]``: the fake upstream alone, until Ctrl-C
or SIGTERM (key: FAKE_UPSTREAM_API_KEY, default local-dev-key; port: FAKE_UPSTREAM_PORT).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from types import FrameType

from local.fake_upstream.server import DEFAULT_API_KEY, DEFAULT_PORT, FakeUpstream


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local.fake_upstream",
        description="Fake imagepipeline.io SD 1.5 upstream (dev/test only).",
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
