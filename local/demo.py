"""`make demo`: the gateway producing images on this machine, end to end, over HTTP.

Starts the local stack (`python -m local.stack`) as a subprocess on free ports and drives it
with the project's own client, `imagegateway_client.Client` (client/): submits the sample
request of one kind, events/<kind>_request.json, to POST /sd/<kind>/v1, follows the job with
GET /sd/<kind>/v1/status/<id>, checks (through the fake upstream's stats) that the upstream was
sent one job of that kind, downloads every image through its presigned URL into
out/<job id>/<n>.png (the client checks each one's size and sha256 against what the gateway
reported; the demo that it is a PNG of the requested size), prints the URLs, where each picture
is and what it shows (the fake upstream paints a test card of the request: prompt, seed, size,
kind, model, LoRAs, steps, guidance), the job's timings, and stops the stack.
Exits 0 when all of that worked, 1 otherwise (2 for a bad option or KIND).

The kind is text2image, image2image, inpainting or controlnet: --kind KIND, else the KIND
environment variable (`KIND=controlnet make demo`), else text2image. The fake upstream never
fetches the sample's image URLs (init_image, mask_image, init_images).

Options: --kind KIND, --request FILE (another body, sent to the kind's route), --out DIR,
--keep or DEMO_KEEP=1 (leave the stack running afterwards, so the printed URLs can be opened
with curl or a browser, until Ctrl-C).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import struct
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from imagegateway_client import (
    Client,
    ImageGatewayError,
    Job,
    Progress,
    WaitTimeoutError,
    download_images,
    parse_kind,
)

from local.aws.template import REPO
from local.fake_upstream.card import card_lines
from local.stack.process import StackProcess
from local.stack.settings import HOST, StackError

# The upstream's SD 1.5 kinds (domain.base.JobKind), each with its own routes and sample.
KINDS = ("text2image", "image2image", "inpainting", "controlnet")
DEFAULT_KIND = "text2image"
KIND_VARIABLE = "KIND"
EVENTS = REPO / "events"
JOB_TIMEOUT_SECONDS = 90.0
POLL_EVERY_SECONDS = 1.0
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_print_lock = threading.Lock()


def say(text: str = "") -> None:
    with _print_lock:
        print(text, flush=True)


def stack_line(line: str) -> None:
    say(f"    stack | {line}")


class DemoError(Exception):
    pass


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    if data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise DemoError("not a PNG file")
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def sample_request(kind: str) -> Path:
    return EVENTS / f"{kind}_request.json"


def submit_path(kind: str) -> str:
    return f"/sd/{kind}/v1"


def status_path(kind: str, job_id: str) -> str:
    return f"/sd/{kind}/v1/status/{job_id}"


def shown_path(path: Path) -> Path:
    return path.relative_to(REPO) if path.is_relative_to(REPO) else path


def chosen_kind(option: str | None, environ: Mapping[str, str]) -> str:
    """--kind, else $KIND, else text2image; anything but the four kinds is a DemoError."""
    if option is not None:
        source, value = "--kind ", option
    else:
        source, value = f"{KIND_VARIABLE}=", environ.get(KIND_VARIABLE, "")
        if not value.strip():
            return DEFAULT_KIND
    kind = value.strip()
    if kind not in KINDS:
        raise DemoError(f"{source}{value!r} is not a kind: use one of {', '.join(KINDS)}")
    return kind


@functools.cache
def client_for(gateway: str) -> Client:
    """The demo's client of the local stack, which runs unsigned requests as its local caller:
    no API key and no SigV4, whatever the shell holds."""
    return Client(
        gateway,
        api_key="",
        aws_auth=False,
        poll_interval=POLL_EVERY_SECONDS,
        max_poll_interval=POLL_EVERY_SECONDS,
    )


def submit(gateway: str, kind: str, body: bytes, source: Path) -> str:
    path = submit_path(kind)
    say(f"==> POST {gateway}{path}  ({shown_path(source)}, with imagegateway_client)")
    started = time.monotonic()
    job = client_for(gateway).submit(parse_kind(kind), body)
    took = time.monotonic() - started
    answer = json.dumps(dict(job.view), separators=(",", ":"))
    say(f"    {job.http_status} {answer}  ({took:.2f} s)")
    if job.http_status != 202:
        raise DemoError(f"the submit answered {job.http_status}, not 202")
    return job.id


def wait_for(gateway: str, kind: str, job_id: str) -> dict[str, Any]:
    path = status_path(kind, job_id)
    say(f"==> GET {gateway}{path}  (every {POLL_EVERY_SECONDS:.0f} s)")
    shown: list[Any] = [None, 0.0]  # the status last printed, and when

    def show(progress: Progress) -> None:
        status, elapsed = progress.job.status, progress.elapsed
        if status != shown[0] or elapsed - shown[1] >= 3:
            code = progress.job.http_status
            say(f"    {elapsed:5.1f} s  poll {progress.polls:>2}: {code} {status}")
            shown[:] = [status, elapsed]

    try:
        job = client_for(gateway).wait(
            job_id, parse_kind(kind), timeout=JOB_TIMEOUT_SECONDS, on_progress=show
        )
    except WaitTimeoutError as exc:
        raise DemoError(f"the job was still PENDING after {JOB_TIMEOUT_SECONDS:.0f} s") from exc
    return dict(job.view)


def upstream_kinds(upstream: str) -> list[str] | None:
    """The kind of every job the fake upstream took (its stats hook); None for the real one."""
    if urlsplit(upstream).hostname != HOST:
        return None
    response = requests.get(f"{upstream}/__fake__/stats", timeout=10)
    if response.status_code != 200:
        raise DemoError(f"the fake upstream's stats answered {response.status_code}")
    jobs: dict[str, dict[str, Any]] = response.json().get("jobs") or {}
    return [str(job.get("kind")) for job in jobs.values()]


def image_size(request: dict[str, Any]) -> tuple[int, int]:
    """The size of the images a request asks for: the upstream's Hi-res Fix and `upscale: "2x"`
    double the width and height."""
    scale = 2 if request.get("hires") is True or request.get("upscale") == "2x" else 1
    return (int(request.get("width") or 512) * scale, int(request.get("height") or 512) * scale)


def save_images(view: dict[str, Any], request: dict[str, Any], out: Path) -> list[Path]:
    job = Job.from_view(view)
    expected = image_size(request)
    wanted = int(request.get("samples") or 1)
    if len(job.images) != wanted or len(job.download_urls) != wanted:
        raise DemoError(f"expected {wanted} image(s), the job has {len(job.images)}")
    say(f"==> {len(job.images)} image(s), downloaded through their presigned URLs")
    # The client checks each image's size and sha256 against the gateway's before saving it.
    saved = download_images(job, out)
    for index, (image, path) in enumerate(zip(job.images, saved, strict=True)):
        data = path.read_bytes()
        size = png_size(data)
        if size != expected:
            raise DemoError(
                f"image {index} is {size[0]}x{size[1]}, not {expected[0]}x{expected[1]}"
            )
        digest = hashlib.sha256(data).hexdigest()
        shown = shown_path(path)
        say(f"    {shown}  {size[0]}x{size[1]} PNG, {len(data)} bytes, sha256 {digest[:16]}...")
        say(f"      {image.url}")
    return saved


def say_what_the_cards_show(kind: str, request: dict[str, Any], saved: list[Path]) -> None:
    """Where each picture is and what it shows: the fake upstream paints a test card of the
    request it received (local/fake_upstream/card.py), so a reader can tell which request made
    which picture."""
    for index, path in enumerate(saved):
        width, height = png_size(path.read_bytes())
        lines = card_lines(request, kind=kind, width=width, height=height, index=index)
        say(f"==> {shown_path(path)} is the fake upstream's test card of the request; it shows:")
        for part in ("title", "prompt", "details"):
            for text in lines[part]:
                say(f"    {text}" if part != "prompt" else f"    “{text}”")


def print_timings(view: dict[str, Any], seen_after: float) -> None:
    timings = view.get("timings") or {}

    def seconds(name: str) -> str:
        value = timings.get(name)
        return "-" if value is None else f"{value:.2f} s"

    say("==> timings (as the gateway recorded them)")
    say(f"    created         {timings.get('created_at', '-')}")
    say(f"    queued          {seconds('queued_seconds')}  (request -> upstream accepted)")
    say(f"    upstream        {seconds('upstream_seconds')}  (accepted -> upstream SUCCESS)")
    say(f"    copy to S3      {seconds('copy_seconds')}  (upstream SUCCESS -> images stored)")
    say(f"    total           {seconds('total_seconds')}")
    say(f"    seen by client  {seen_after:.2f} s after the submit")


def run(
    stack: StackProcess, kind: str, source: Path, body: bytes, request: dict[str, Any], out: Path
) -> None:
    assert stack.urls is not None
    gateway = stack.urls.gateway
    started = time.monotonic()
    job_id = submit(gateway, kind, body, source)
    view = wait_for(gateway, kind, job_id)
    seen_after = time.monotonic() - started
    if view["status"] != "SUCCESS":
        raise DemoError(
            f"the job ended {view['status']}: {view.get('error_code', '')} {view.get('error', '')}"
        )
    kinds = upstream_kinds(stack.urls.upstream)
    if kinds is not None:
        say(f"==> the fake upstream took {len(kinds)} job(s): {', '.join(kinds) or '-'}")
        if kinds != [kind]:
            raise DemoError(f"the fake upstream was sent {kinds}, not one {kind} job")
    saved = save_images(view, request, out)
    if kinds is not None:
        say_what_the_cards_show(kind, request, saved)
    print_timings(view, seen_after)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.demo", description=__doc__)
    parser.add_argument(
        "--kind",
        metavar="KIND",
        help=f"one of {', '.join(KINDS)} (default: $KIND, else {DEFAULT_KIND})",
    )
    parser.add_argument(
        "--request", type=Path, help="the request body (default: events/<kind>_request.json)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "out", help="where images go")
    parser.add_argument("--keep", action="store_true", help="keep the stack up until Ctrl-C")
    args = parser.parse_args(argv)

    try:
        kind = chosen_kind(args.kind, os.environ)
        source: Path = args.request or sample_request(kind)
        body = source.read_bytes()
        request = json.loads(body)
        if not isinstance(request, dict):
            raise DemoError(f"{shown_path(source)} does not hold a JSON object")
    except (DemoError, OSError, ValueError) as exc:
        parser.error(str(exc))
    began = time.monotonic()
    say(f"imagepipeline-gateway demo: the whole gateway on this machine ({kind})")
    say("==> starting the local stack: python -m local.stack (free ports)")
    stack = StackProcess(echo=stack_line)
    ok = False
    try:
        urls = stack.start()
        say(f"==> ready after {time.monotonic() - began:.1f} s: gateway {urls.gateway}")
        run(stack, kind, source, body, request, args.out.resolve())
        ok = True
        if args.keep or os.environ.get("DEMO_KEEP") == "1":
            say(f"==> the stack stays up (gateway {urls.gateway}, moto {urls.moto}); Ctrl-C stops")
            while True:
                time.sleep(3600)
    except (
        DemoError,
        StackError,
        ImageGatewayError,
        requests.RequestException,
        ValueError,
        KeyError,
    ) as exc:
        say(f"!!  demo failed: {type(exc).__name__}: {exc}")
    except KeyboardInterrupt:
        say("==> interrupted")
    finally:
        say("==> stopping the stack")
        code = stack.stop()
        if code != 0:
            say(f"!!  the stack exited with {code}")
            ok = False
    total = time.monotonic() - began
    if ok:
        say(f"==> demo succeeded in {total:.1f} s")
        say("    (this run's moto server served those URLs; DEMO_KEEP=1 make demo keeps it up)")
        return 0
    say(f"!!  demo FAILED after {total:.1f} s")
    return 1


if __name__ == "__main__":
    sys.exit(main())
