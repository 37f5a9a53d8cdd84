"""`imagegateway`: the gateway from a shell.

    imagegateway generate --prompt "a lighthouse at dusk" --out out/
    imagegateway status <job id>
    imagegateway jobs --limit 10
    imagegateway cancel <job id>

Results go to stdout (the saved images' paths, one a line; a status; a list), progress and
messages to stderr: a live status line on a terminal, plain lines when piped. Exit codes: 0 ok,
1 the job ended FAILURE or the gateway / network failed (the message on stderr), 2 usage.
The gateway's URL is --url, else IMAGEGATEWAY_URL, else the local stack (`make run`);
credentials come from the environment: IMAGEGATEWAY_API_KEY, else AWS credentials (SigV4).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from imagegateway_client.client import (
    DEFAULT_OUT,
    DEFAULT_URL,
    DEFAULT_WAIT_SECONDS,
    URL_VARIABLE,
    Client,
    __version__,
)
from imagegateway_client.errors import ImageGatewayError
from imagegateway_client.models import (
    DEFAULT_KIND,
    DEFAULT_MODEL_ID,
    KINDS,
    ControlNet,
    Job,
    LoraWeight,
    Progress,
    parse_kind,
    request_body,
)

OK, FAILED, USAGE = 0, 1, 2
INTERRUPTED = 130
SPINNER = "|/-\\"


class ProgressDisplay:
    """`Client.wait`'s on_progress for a person: on a terminal one live line, rewritten at every
    status read; piped, a plain line when the status changes (and every `heartbeat` seconds
    while it does not)."""

    def __init__(self, stream: TextIO, *, live: bool | None = None, heartbeat: float = 15.0):
        self.stream = stream
        self.live = _isatty(stream) if live is None else live
        self.heartbeat = heartbeat
        self._shown: str | None = None
        self._shown_at = 0.0
        self._eta_shown: object = None
        self._open_line = False

    def __call__(self, progress: Progress) -> None:
        job = progress.job
        text = f"job {job.id} {job.status} after {progress.elapsed:.1f} s"
        if not job.done:
            text += f", {job.eta_text()}"
        if self.live:
            frame = SPINNER[progress.polls % len(SPINNER)] if not job.done else " "
            self.stream.write(f"\r\x1b[K{frame} {text} (status read {progress.polls})")
            self._open_line = True
            if job.done:
                self.finish()
        elif (
            job.status != self._shown
            or progress.elapsed - self._shown_at >= self.heartbeat
            or (self._eta_shown is None and job.estimated_done_at is not None)
        ):
            self._eta_shown = job.estimated_done_at
            self.stream.write(text + "\n")
            self._shown, self._shown_at = job.status, progress.elapsed
        self.stream.flush()

    def finish(self) -> None:
        """End the live line (before anything else is written)."""
        if self._open_line:
            self.stream.write("\n")
            self.stream.flush()
            self._open_line = False


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# ---------------------------------------------------------------------- argument types


def _lora(text: str) -> tuple[str, LoraWeight]:
    model, separator, weight = text.rpartition(":")
    if not separator or not model or not weight:
        raise argparse.ArgumentTypeError(f"{text!r}: give a LoRA as ID:WEIGHT, e.g. abc-123:0.8")
    try:
        float(weight)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: the weight {weight!r} is not a number"
        ) from None
    return model, weight.strip()


def _controlnet(text: str) -> ControlNet:
    """`NAME=URL` or `NAME:WEIGHT=URL`: a ControlNet and its conditioning image."""
    named, separator, image = text.partition("=")
    name, _, weight = named.partition(":")
    if not separator or not name.strip() or not image.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: use NAME=URL or NAME:WEIGHT=URL")
    try:
        return ControlNet(name.strip(), image.strip(), float(weight) if weight.strip() else None)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: the weight {weight!r} is not a number"
        ) from None


def _kind(text: str) -> str:
    try:
        return parse_kind(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http(s) URL")
    return text


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0")
    return value


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        type=_url,
        help=f"the gateway's base URL (default: ${URL_VARIABLE}, else {DEFAULT_URL})",
    )
    root = argparse.ArgumentParser(
        prog="imagegateway",
        description="Generate images through imagepipeline-gateway and follow its jobs.",
        epilog="Credentials come from the environment: IMAGEGATEWAY_API_KEY, else AWS "
        "credentials (SigV4, as botocore finds them), else none (the local stack). Exit codes: "
        "0 ok, 1 job FAILURE or gateway error, 2 usage.",
    )
    root.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    generate = commands.add_parser(
        "generate",
        parents=[common],
        help="submit a job, wait for it, save its images",
        description="Submit a job, show its progress, save its images as OUT/<job id>/<n>.png "
        "and print their paths.",
    )
    generate.add_argument("--prompt", required=True, help="what to draw")
    generate.add_argument(
        "--kind", type=_kind, default=DEFAULT_KIND, help=f"{', '.join(KINDS)} (default %(default)s)"
    )
    generate.add_argument(
        "--model-id", default=DEFAULT_MODEL_ID, help="upstream model id (default %(default)s)"
    )
    generate.add_argument("--negative-prompt", help="what to avoid")
    generate.add_argument(
        "--lora",
        type=_lora,
        action="append",
        default=[],
        metavar="ID:WEIGHT",
        help="a LoRA model and its weight (repeat for more)",
    )
    generate.add_argument("--samples", type=int, help="images to make (1-4)")
    generate.add_argument("--width", type=int, help="pixels, a multiple of 8")
    generate.add_argument("--height", type=int, help="pixels, a multiple of 8")
    generate.add_argument("--seed", type=int, help="-1 or absent: random")
    generate.add_argument("--steps", type=int, help="num_inference_steps (1-100)")
    generate.add_argument("--guidance-scale", type=float, help="guidance_scale (1-20)")
    generate.add_argument("--strength", type=float, help="strength (0-1)")
    generate.add_argument("--init-image", metavar="URL", help="image2image / inpainting input")
    generate.add_argument("--mask-image", metavar="URL", help="inpainting mask")
    generate.add_argument(
        "--controlnet",
        type=_controlnet,
        action="append",
        default=[],
        metavar="NAME[:WEIGHT]=URL",
        help="controlnet: a ControlNet (canny, openpose...) and its conditioning image (repeat "
        "for multi-ControlNet)",
    )
    generate.add_argument("--scheduler", help="e.g. EulerDiscreteScheduler")
    generate.add_argument(
        "--hires",
        action="store_true",
        help="the upstream's Hi-res Fix: twice the width and height (one sample)",
    )
    generate.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="where images go (default %(default)s/)"
    )
    generate.add_argument(
        "--no-wait", action="store_true", help="print the job id once accepted, and exit"
    )
    generate.add_argument(
        "--timeout",
        type=_positive,
        default=DEFAULT_WAIT_SECONDS,
        metavar="SECONDS",
        help="how long to wait for the job (default %(default)g)",
    )
    generate.add_argument("--idempotency-key", help="the same key and body make one job")
    generate.add_argument(
        "--no-cache",
        action="store_true",
        help="generate again a fixed-seed request you already ran (default: served from it)",
    )
    generate.add_argument(
        "--strict-tokens",
        action="store_true",
        help="refuse a prompt over the 75 tokens the model reads instead of truncating it",
    )

    status = commands.add_parser(
        "status",
        parents=[common],
        help="a job's status",
        description="Print a job's status (exit 1 when it ended FAILURE).",
    )
    status.add_argument("job_id", metavar="ID")
    status.add_argument("--kind", type=_kind, help="the job's kind (default: ask every kind)")
    status.add_argument("--json", action="store_true", help="the gateway's JSON as it is")

    jobs = commands.add_parser(
        "jobs",
        parents=[common],
        help="your jobs, newest first",
        description="List your jobs, newest first, one page at a time.",
    )
    jobs.add_argument("--limit", type=int, help="jobs per page")
    jobs.add_argument("--cursor", help="the next page (printed after a full page)")
    jobs.add_argument("--status", help="only jobs in this status (PENDING, SUCCESS, FAILURE)")
    jobs.add_argument("--json", action="store_true", help="the gateway's JSON as it is")

    cancel = commands.add_parser(
        "cancel",
        parents=[common],
        help="cancel a job",
        description="Cancel a job: it ends FAILURE with error_code CANCELLED.",
    )
    cancel.add_argument("job_id", metavar="ID")
    cancel.add_argument("--json", action="store_true", help="the gateway's JSON as it is")

    usage = commands.add_parser(
        "usage",
        parents=[common],
        help="your usage today, and your daily budget",
        description="Print the images your jobs asked the upstream for today (UTC), your daily "
        "budget and when it starts again.",
    )
    usage.add_argument("--json", action="store_true", help="the gateway's JSON as it is")

    commands.add_parser(
        "webhook-secret",
        parents=[common],
        help="print your own webhook secret (whsec_...)",
        description="Print the Standard Webhooks secret every webhook of your jobs is signed "
        "with, for your receivers to verify with.",
    )
    return root


# ---------------------------------------------------------------------- commands


def _generated_body(args: argparse.Namespace) -> dict[str, Any]:
    """The upstream's body from `generate`'s options. ValueError for options that do not go
    together (a weight for some ControlNets but not all)."""
    extra: dict[str, Any] = {}
    if args.guidance_scale is not None:
        extra["guidance_scale"] = args.guidance_scale
    if args.strength is not None:
        extra["strength"] = args.strength
    if args.scheduler is not None:
        extra["scheduler"] = args.scheduler
    if args.hires:
        extra["hires"] = True
    return request_body(
        prompt=args.prompt,
        model_id=args.model_id,
        negative_prompt=args.negative_prompt,
        steps=args.steps,
        samples=args.samples,
        width=args.width,
        height=args.height,
        seed=args.seed,
        loras=args.lora,
        init_image=args.init_image,
        mask_image=args.mask_image,
        controlnets=args.controlnet,
        extra=extra,
    )


def _generate(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    kind = parse_kind(args.kind)
    try:
        body = _generated_body(args)
    except ValueError as exc:
        print(f"imagegateway: {exc}", file=err)
        return USAGE
    job = client.submit(
        kind,
        body,
        idempotency_key=args.idempotency_key,
        no_cache=args.no_cache,
        strict_tokens=args.strict_tokens,
    )
    print(f"submitted {kind} job {job.id} to {client.url}", file=err, flush=True)
    for warning in job.view.get("warnings") or ():
        print(f"warning: {warning}", file=err, flush=True)
    if job.view.get("cached_from"):
        print(f"served from job {job.view['cached_from']} (same request and seed)", file=err)
    if args.no_wait:
        print(job.id, file=out, flush=True)
        print(f"follow it with: imagegateway status {job.id} --kind {kind}", file=err)
        return OK
    display = ProgressDisplay(err)
    try:
        if job.done and job.images:
            display(Progress(job=job, polls=0, elapsed=0.0))
        else:
            job = client.wait(job.id, kind, timeout=args.timeout, on_progress=display)
    finally:
        display.finish()
    files = client.download(job, args.out)
    for path in files:
        print(path, file=out, flush=True)
    print(f"saved {len(files)} image(s) in {args.out / job.id}", file=err)
    return OK


def _show_job(job: Job, out: TextIO) -> None:
    rows: list[tuple[str, str]] = [
        ("id", job.id),
        ("kind", job.kind or "-"),
        ("status", job.status),
    ]
    if job.error_code or job.error:
        rows.append(("error", f"{job.error_code or '-'}: {job.error or ''}"))
    for index, image in enumerate(job.images):
        rows.append(
            (
                f"image {index}",
                f"{image.content_type}, {image.size} bytes, sha256 {image.sha256[:16]}...",
            )
        )
        rows.append(("", image.url))
    if not job.images:
        rows.extend(("url", url) for url in job.download_urls)
    timings = job.timings
    if timings.get("total_seconds") is not None:
        parts = [
            f"{name} {timings[key]:.2f} s"
            for name, key in (
                ("queued", "queued_seconds"),
                ("upstream", "upstream_seconds"),
                ("copy", "copy_seconds"),
            )
            if isinstance(timings.get(key), int | float)
        ]
        rows.append(("timings", f"total {timings['total_seconds']:.2f} s ({', '.join(parts)})"))
    elif timings.get("created_at"):
        rows.append(("created", str(timings["created_at"])))
    for name, value in rows:
        print(f"{name:<9} {value}", file=out)


def _status(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    job = client.status(args.job_id, parse_kind(args.kind) if args.kind else None)
    if args.json:
        print(json.dumps(dict(job.view), indent=2), file=out)
    else:
        _show_job(job, out)
    return FAILED if job.failed else OK


def _jobs(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    page = client.jobs(limit=args.limit, cursor=args.cursor, status=args.status)
    if args.json:
        views = [dict(job.view) for job in page.jobs]
        print(json.dumps({"jobs": views, "next_cursor": page.next_cursor}, indent=2), file=out)
        return OK
    for job in page.jobs:
        created = job.timings.get("created_at") or job.view.get("created_at") or "-"
        code = f"  {job.error_code}" if job.error_code else ""
        eta = f"  {job.eta_text()}" if not job.done else ""
        print(f"{job.id}  {job.kind or '-':<11}  {job.status:<7}  {created}{code}{eta}", file=out)
    if not page.jobs:
        print("no jobs", file=err)
    if page.next_cursor:
        print(f"more: imagegateway jobs --cursor {page.next_cursor}", file=err)
    return OK


def _cancel(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    job = client.cancel(args.job_id)
    if args.json:
        print(json.dumps(dict(job.view), indent=2), file=out)
    else:
        _show_job(job, out)
    return OK


def _webhook_secret(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    print(client.webhook_secret(), file=out)
    return OK


def _usage(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    usage = client.usage()
    if args.json:
        print(json.dumps(usage, indent=2), file=out)
        return OK
    budget = usage.get("budget")
    limit = "unlimited" if budget is None else f"{budget} (remaining {usage.get('remaining')})"
    print(f"day       {usage.get('day')}", file=out)
    print(f"images    {usage.get('images')}", file=out)
    print(f"budget    {limit}", file=out)
    print(f"resets at {usage.get('resets_at')}", file=out)
    return OK


COMMANDS = {
    "generate": _generate,
    "status": _status,
    "jobs": _jobs,
    "cancel": _cancel,
    "usage": _usage,
    "webhook-secret": _webhook_secret,
}


def main(
    argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    args = parser().parse_args(argv)
    try:
        with Client(args.url) as client:
            return COMMANDS[args.command](client, args, out, err)
    except ImageGatewayError as exc:
        # A job's FAILURE, a wait that ran out, the gateway's error answers, the network.
        print(f"imagegateway: {exc}", file=err)
        return FAILED
    except KeyboardInterrupt:
        print("imagegateway: interrupted (a submitted job keeps running)", file=err)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
