"""`Client`: the gateway's HTTP API as Python calls.

    from imagegateway_client import Client

    client = Client()                        # IMAGEGATEWAY_URL, else the local stack
    result = client.generate(prompt="a lighthouse at dusk", out=Path("out"))
    print(result.job.id, result.files)

Routes: `POST /sd/{kind}/v1` (submit), `GET /sd/{kind}/v1/status/{id}` (status),
`GET /v1/jobs` (jobs), `POST /v1/jobs/{id}/cancel` (cancel).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote, urlencode, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from imagegateway_client.auth import Auth, resolve_auth
from imagegateway_client.errors import (
    AuthenticationError,
    GatewayError,
    GatewayUnreachableError,
    ImageCheckError,
    ImageGatewayError,
    JobFailedError,
    JobFinishedError,
    JobNotFoundError,
    WaitTimeoutError,
)
from imagegateway_client.models import (
    DEFAULT_KIND,
    DEFAULT_MODEL_ID,
    KINDS,
    ControlNet,
    GenerationResult,
    Job,
    JobPage,
    Kind,
    Loras,
    Progress,
    parse_kind,
    request_body,
)

__version__ = "0.1.0"

URL_VARIABLE = "IMAGEGATEWAY_URL"
DEFAULT_URL = "http://127.0.0.1:3000"
DEFAULT_OUT = Path("out")
# The gateway ends every job by its deadline (JOB_DEADLINE_SECONDS, 900 by default); a
# minute more covers the last status check and the copy.
DEFAULT_WAIT_SECONDS = 960.0
REQUEST_TIMEOUT_SECONDS = 30.0
CHUNK_BYTES = 64 * 1024

ProgressCallback = Callable[[Progress], None]


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


class Client:
    """A client of one gateway. `url`: the API's base URL (the stack output `ApiUrl`), else
    `IMAGEGATEWAY_URL`, else the local stack (`make run`, http://127.0.0.1:3000). Credentials:
    `api_key` / `IMAGEGATEWAY_API_KEY`, else AWS SigV4 when botocore finds credentials (or
    `aws_auth=True`; `aws_auth=False` never signs), else none. `environ` replaces os.environ for
    the IMAGEGATEWAY_* and region variables (botocore reads its own from os.environ)."""

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        aws_auth: bool | None = None,
        region: str | None = None,
        timeout: float = REQUEST_TIMEOUT_SECONDS,
        poll_interval: float = 1.0,
        max_poll_interval: float = 5.0,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        chosen = (url or env.get(URL_VARIABLE, "").strip() or DEFAULT_URL).rstrip("/")
        parts = urlsplit(chosen)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ImageGatewayError(
                f"{chosen!r} is not a gateway URL: give an http(s) URL such as {DEFAULT_URL} "
                f"or the stack output ApiUrl (--url or {URL_VARIABLE})"
            )
        self.url = chosen
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.max_poll_interval = max(max_poll_interval, poll_interval)
        self.auth: Auth = resolve_auth(
            chosen, api_key=api_key, aws_auth=aws_auth, region=region, environ=env
        )
        self._session = requests.Session()
        # Reads are retried on a dropped connection or a gateway 502/503/504; a submit never is
        # (it could make a second job).
        retry = Retry(
            total=3,
            connect=1,
            read=2,
            status=2,
            backoff_factor=0.3,
            status_forcelist=(502, 503, 504),
            allowed_methods=frozenset({"GET"}),
            respect_retry_after_header=False,
            raise_on_status=False,
        )
        self._session.mount("http://", HTTPAdapter(max_retries=retry))
        self._session.mount("https://", HTTPAdapter(max_retries=retry))
        # Presigned image URLs: no credentials of ours, ever.
        self._downloads = requests.Session()
        self._sleep: Callable[[float], None] = time.sleep

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        self._session.close()
        self._downloads.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r}, auth={self.auth.description!r})"

    # ------------------------------------------------------------------ verbs

    def submit(
        self,
        kind: Kind,
        body: Mapping[str, Any] | bytes,
        *,
        idempotency_key: str | None = None,
        webhook_url: str | None = None,
        no_cache: bool = False,
        strict_tokens: bool = False,
    ) -> Job:
        """POST the upstream's request body (a mapping, or JSON bytes sent as they are) to
        `/sd/{kind}/v1`. The job comes back PENDING (202), or already ended (200: e.g. a
        fixed-seed request you already ran, served from that job's images, `cached_from`).
        `no_cache` generates it again anyway; `strict_tokens` refuses (422) a prompt longer
        than the 75 tokens the model reads instead of paying for a truncated job."""
        kind = parse_kind(kind)
        data = body if isinstance(body, bytes) else json.dumps(dict(body)).encode()
        headers = {"Content-Type": "application/json"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        if no_cache:
            headers["Cache-Control"] = "no-cache"
        if strict_tokens:
            headers["Prefer"] = "strict-tokens"
        query = {"webhook_url": webhook_url} if webhook_url else None
        response = self._call(
            "POST", f"/sd/{kind}/v1", data=data, headers=headers, query=query, operation="submit"
        )
        return self._job(response, kind=kind)

    def status(self, job_id: str, kind: Kind | None = None) -> Job:
        """The job as it is now (`GET /sd/{kind}/v1/status/{id}`), images with freshly
        presigned URLs. Without `kind`, each kind's route is asked until one knows the job."""
        kinds = (parse_kind(kind),) if kind else KINDS
        missing: JobNotFoundError | None = None
        for candidate in kinds:
            try:
                response = self._call(
                    "GET",
                    f"/sd/{candidate}/v1/status/{quote(job_id, safe='')}",
                    job_id=job_id,
                    operation="status",
                )
            except JobNotFoundError as exc:
                missing = exc
                continue
            return self._job(response, kind=candidate)
        assert missing is not None
        if len(kinds) > 1:
            missing.hint += f" (asked the routes of every kind: {', '.join(kinds)})"
            missing.args = (missing._message(),)
        raise missing

    def wait(
        self,
        job_id: str,
        kind: Kind | None = None,
        timeout: float = DEFAULT_WAIT_SECONDS,
        on_progress: ProgressCallback | None = None,
    ) -> Job:
        """Poll the job's status until it is SUCCESS or FAILURE, and return it (a FAILURE is
        returned, not raised). `on_progress` is called after every read. WaitTimeoutError when
        it is still PENDING after `timeout` seconds (the job itself keeps running)."""
        started = time.monotonic()
        interval = self.poll_interval
        polls = 0
        while True:
            job = self.status(job_id, kind)
            kind = job.kind or kind
            polls += 1
            elapsed = time.monotonic() - started
            if on_progress is not None:
                on_progress(Progress(job=job, polls=polls, elapsed=elapsed))
            if job.done:
                return job
            if elapsed >= timeout:
                raise WaitTimeoutError(job, timeout)
            self._sleep(min(interval, max(0.0, timeout - elapsed)))
            interval = min(interval * 1.5, self.max_poll_interval)

    def download(self, job: Job, out: Path = DEFAULT_OUT) -> list[Path]:
        """Save a SUCCESS job's images (see `download_images`)."""
        return download_images(job, out, session=self._downloads, timeout=self.timeout)

    def generate(
        self,
        prompt: str,
        *,
        kind: Kind = DEFAULT_KIND,
        model_id: str = DEFAULT_MODEL_ID,
        negative_prompt: str | None = None,
        steps: int | None = None,
        loras: Loras = (),
        samples: int | None = None,
        width: int | None = None,
        height: int | None = None,
        seed: int | None = None,
        init_image: str | None = None,
        mask_image: str | None = None,
        controlnets: Sequence[ControlNet] = (),
        extra: Mapping[str, Any] | None = None,
        out: Path = DEFAULT_OUT,
        wait: bool = True,
        timeout: float = DEFAULT_WAIT_SECONDS,
        on_progress: ProgressCallback | None = None,
        idempotency_key: str | None = None,
        no_cache: bool = False,
        strict_tokens: bool = False,
    ) -> GenerationResult:
        """Submit, wait, and save the images (see `download`). Fields left None are not sent,
        so the upstream's defaults apply; `loras` maps LoRA model ids to weights; `controlnets`
        are a controlnet job's (kind="controlnet"); `extra` adds any other upstream field as
        is. With wait=False: the submitted job and no files.
        JobFailedError when the job ends FAILURE."""
        body = request_body(
            prompt=prompt,
            model_id=model_id,
            negative_prompt=negative_prompt,
            steps=steps,
            samples=samples,
            width=width,
            height=height,
            seed=seed,
            loras=loras,
            init_image=init_image,
            mask_image=mask_image,
            controlnets=controlnets,
            extra=extra,
        )
        job = self.submit(
            kind,
            body,
            idempotency_key=idempotency_key,
            no_cache=no_cache,
            strict_tokens=strict_tokens,
        )
        if not wait:
            return GenerationResult(job=job, files=[])
        if not job.done:
            job = self.wait(job.id, kind, timeout=timeout, on_progress=on_progress)
        elif on_progress is not None:
            on_progress(Progress(job=job, polls=0, elapsed=0.0))
        if job.failed:
            raise JobFailedError(job)
        if job.succeeded and not job.images:
            # A submit answered 200 SUCCESS may carry URLs only: read the full view.
            job = self.status(job.id, kind)
        return GenerationResult(job=job, files=self.download(job, out))

    def jobs(
        self, limit: int | None = None, cursor: str | None = None, status: str | None = None
    ) -> JobPage:
        """One page of the caller's jobs, newest first (`GET /v1/jobs`); pass `next_cursor` back
        as `cursor` for the next page. `status` keeps the jobs in that status."""
        query: dict[str, str] = {}
        if limit is not None:
            query["limit"] = str(limit)
        if cursor:
            query["cursor"] = cursor
        if status:
            query["status"] = status
        response = self._call("GET", "/v1/jobs", query=query or None, operation="jobs")
        answer = self._json(response)
        items = answer.get("jobs") if isinstance(answer, dict) else None
        if not isinstance(items, list):
            raise ImageGatewayError(
                f"GET /v1/jobs answered {response.status_code} without a 'jobs' list"
            )
        try:
            jobs = [Job.from_view(item, http_status=response.status_code) for item in items]
        except ValueError as exc:
            raise ImageGatewayError(f"GET /v1/jobs answered a malformed job: {exc}") from exc
        following = answer.get("next_cursor")
        return JobPage(jobs=jobs, next_cursor=str(following) if following else None)

    def usage(self) -> dict[str, Any]:
        """The caller's usage today (`GET /v1/usage`): `day`, `images` asked of the upstream,
        `budget` and `remaining` (None: unlimited), `resets_at`."""
        answer = self._json(self._call("GET", "/v1/usage", operation="usage"))
        if not isinstance(answer, dict) or "images" not in answer:
            raise ImageGatewayError("GET /v1/usage answered without the day's usage")
        return answer

    def webhook_secret(self) -> str:
        """The caller's own webhook secret (`GET /v1/webhooks/secret`), `whsec_...`: every
        webhook of its jobs is signed with it (verify with the standardwebhooks package)."""
        answer = self._json(self._call("GET", "/v1/webhooks/secret", operation="webhook-secret"))
        secret = answer.get("secret") if isinstance(answer, dict) else None
        if not isinstance(secret, str) or not secret.startswith("whsec_"):
            raise ImageGatewayError("GET /v1/webhooks/secret answered without a whsec_ secret")
        return secret

    def cancel(self, job_id: str) -> Job:
        """Cancel a job (`POST /v1/jobs/{id}/cancel`): it ends FAILURE, error_code CANCELLED.
        Cancelling again is harmless; a job that had already ended raises JobFinishedError (the
        job is unchanged)."""
        response = self._call(
            "POST",
            f"/v1/jobs/{quote(job_id, safe='')}/cancel",
            data=b"",
            job_id=job_id,
            operation="cancel",
        )
        if not response.content.strip():
            return self.status(job_id)
        return self._job(response, job_id=job_id)

    # ------------------------------------------------------------------ HTTP

    def _call(
        self,
        method: str,
        path: str,
        *,
        data: bytes = b"",
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        job_id: str | None = None,
        operation: str,
    ) -> requests.Response:
        url = self.url + path
        if query:
            url += "?" + urlencode(dict(query), quote_via=quote)
        sent = {"Accept": "application/json", "User-Agent": f"imagegateway-client/{__version__}"}
        sent.update(headers or {})
        sent.update(self.auth.sign(method, url, data, sent))
        try:
            response = self._session.request(
                method, url, data=data or None, headers=sent, timeout=self.timeout
            )
        except requests.Timeout as exc:
            raise GatewayUnreachableError(
                f"no answer from {self.url} within {self.timeout:g} s ({method} {path}); "
                "the gateway may be overloaded: try again"
            ) from exc
        except requests.ConnectionError as exc:
            raise GatewayUnreachableError(
                f"cannot connect to the gateway at {self.url}: {_reason(exc)}. Check the URL "
                f"(--url or {URL_VARIABLE}; the stack output ApiUrl when deployed); for the "
                "local stack, start it with `make run`"
            ) from exc
        except requests.RequestException as exc:
            raise GatewayUnreachableError(f"{method} {url} failed: {exc}") from exc
        if response.status_code >= 400:
            raise self._error(response, job_id=job_id, operation=operation)
        return response

    def _json(self, response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise ImageGatewayError(
                f"{response.request.method} {response.url} answered {response.status_code} "
                f"with a body that is not JSON; is {self.url} the gateway's URL?"
            ) from exc

    def _job(
        self, response: requests.Response, *, kind: Kind | None = None, job_id: str | None = None
    ) -> Job:
        try:
            return Job.from_view(
                self._json(response), kind=kind, http_status=response.status_code, job_id=job_id
            )
        except ValueError as exc:
            raise ImageGatewayError(
                f"{response.request.method} {response.url} answered {response.status_code} "
                f"without a job ({exc}); is {self.url} the gateway's URL?"
            ) from exc

    def _error(
        self, response: requests.Response, *, job_id: str | None, operation: str
    ) -> GatewayError:
        status = response.status_code
        body: Any = None
        with contextlib.suppress(ValueError):
            body = response.json()
        fields: Mapping[str, Any] = body if isinstance(body, Mapping) else {}
        error = fields.get("error") or fields.get("message") or fields.get("Message")
        if not error:
            error = response.text.strip()[:200] or response.reason or "no error text"
        details = [d for d in fields.get("details") or () if isinstance(d, Mapping)]
        code = fields.get("error_code")
        arguments: dict[str, Any] = {
            "error_code": None if code is None else str(code),
            "details": details,
            "job_id": fields.get("id") or job_id,
            "retry_after": _retry_after(response.headers.get("Retry-After")),
            "body": body,
        }
        error = str(error)
        if status in (401, 403):
            return AuthenticationError(
                status,
                error,
                hint=(
                    f"The gateway refused the credentials (this request carried "
                    f"{self.auth.description}). Authenticate with IMAGEGATEWAY_API_KEY=<key>, "
                    "or with AWS credentials (AWS_PROFILE, or AWS_ACCESS_KEY_ID / "
                    "AWS_SECRET_ACCESS_KEY) whose policy allows execute-api:Invoke on the API, "
                    "and the API's region (AWS_REGION)."
                ),
                **arguments,
            )
        # A route the gateway does not serve (its own "no such route", API Gateway's "Not
        # Found") is not an unknown job.
        route_missing = error.strip().lower() in ("no such route", "not found")
        if status == 404 and job_id is not None and not route_missing:
            return JobNotFoundError(
                status,
                error,
                hint=(
                    f"Job {job_id} is unknown or not yours: a caller sees only its own jobs "
                    "(check the credentials and the URL), and a job is found only on its own "
                    "kind's route (--kind)."
                ),
                **arguments,
            )
        if status == 404:
            return GatewayError(
                status,
                error,
                hint=(
                    f"{self.url} has no such route ({response.request.method} "
                    f"{urlsplit(response.url).path}): check the URL, and that this gateway "
                    "serves it."
                ),
                **arguments,
            )
        if status == 409 and operation == "cancel":
            state = fields.get("job_status") or fields.get("status")
            ended = f" ({state})" if state else ""
            return JobFinishedError(
                status,
                error,
                hint=f"Job {job_id} had already ended{ended}; a finished job is left unchanged.",
                **arguments,
            )
        if status == 400 and operation == "jobs":
            return GatewayError(
                status,
                error,
                hint="Use a cursor exactly as a page of your own jobs handed it over, or none.",
                **arguments,
            )
        hints = {
            400: "Fix the request body (it must be a JSON object).",
            409: "A request with this Idempotency-Key is still running: retry shortly.",
            413: "The request body is too large.",
            415: "Send the body as JSON.",
            422: "Fix the fields named above; nothing was stored or sent upstream.",
            429: "The gateway is throttling requests: retry later.",
        }
        if status == 429 and code == "BUDGET_EXCEEDED":
            resets = fields.get("resets_at")
            hint = (
                "Your daily image budget on this gateway is spent"
                + (f"; it starts again at {resets}" if resets else "")
                + " (`imagegateway usage`). Nothing was sent upstream. A fixed-seed request you "
                "already ran is still served from its images."
            )
        elif status == 422 and code == "PROMPT_TOO_LONG":
            hint = (
                "SD 1.5 reads 75 tokens of a prompt: shorten it, or send it without strict "
                "tokens (the words past the window are then ignored, and named in `warnings`)."
            )
        elif status == 503 and code == "UPSTREAM_NOT_CONFIGURED":
            hint = "The gateway's operator has not stored the upstream API key yet."
        elif status >= 500:
            hint = "The gateway failed; retry later (its operator has the details in its logs)."
        else:
            hint = hints.get(status, "")
        return GatewayError(status, error, hint=hint, **arguments)


def _reason(exc: BaseException) -> str:
    """The innermost cause of a requests error, e.g. "[Errno 111] Connection refused"."""
    seen = exc
    while seen.__cause__ is not None or seen.__context__ is not None:
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
    text = str(seen)
    return text.split(": ", 1)[-1] if "Failed to establish" in text else text


def download_images(
    job: Job,
    out: Path = DEFAULT_OUT,
    *,
    session: requests.Session | None = None,
    timeout: float = REQUEST_TIMEOUT_SECONDS,
) -> list[Path]:
    """Save a SUCCESS job's images as `out/<job id>/<n>.png` (the extension follows the content
    type), each fetched through its presigned URL (no credentials: the URL is the permission)
    and checked against the size and sha256 the gateway reported; a file is only written once
    it checks out. ImageCheckError when one does not, JobFailedError for a FAILURE job."""
    if not job.succeeded:
        if job.failed:
            raise JobFailedError(job)
        raise ImageGatewayError(f"job {job.id} is {job.status}: it has no images yet")
    if not job.images:
        raise ImageCheckError(f"job {job.id} is SUCCESS but lists no images")
    folder = Path(out) / job.id
    folder.mkdir(parents=True, exist_ok=True)
    if session is None:
        with requests.Session() as own:
            return [_download_one(own, timeout, folder, job, i) for i in range(len(job.images))]
    return [_download_one(session, timeout, folder, job, i) for i in range(len(job.images))]


def _download_one(
    session: requests.Session, timeout: float, folder: Path, job: Job, index: int
) -> Path:
    image = job.images[index]
    path = folder / f"{index}{image.extension}"
    partial = path.with_name(path.name + ".part")
    digest = hashlib.sha256()
    received = 0
    what = f"image {index} of job {job.id}"
    try:
        with session.get(image.url, stream=True, timeout=timeout) as response:
            if response.status_code != 200:
                raise ImageCheckError(
                    f"{what}: its presigned URL answered {response.status_code}; the URL "
                    f"may have expired: read the job again (`imagegateway status {job.id}`) "
                    "for fresh ones"
                )
            with partial.open("wb") as file:
                for chunk in response.iter_content(CHUNK_BYTES):
                    digest.update(chunk)
                    received += len(chunk)
                    file.write(chunk)
    except requests.RequestException as exc:
        partial.unlink(missing_ok=True)
        raise ImageCheckError(f"{what}: could not be downloaded: {_reason(exc)}") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    if received != image.size or digest.hexdigest() != image.sha256:
        partial.unlink(missing_ok=True)
        raise ImageCheckError(
            f"{what} differs from what the gateway reported: {received} bytes, sha256 "
            f"{digest.hexdigest()[:16]}..., expected {image.size} bytes, sha256 "
            f"{image.sha256[:16]}...; nothing was saved"
        )
    partial.replace(path)
    return path
