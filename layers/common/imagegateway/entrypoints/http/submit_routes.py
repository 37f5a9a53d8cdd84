"""The submit routes, one per kind: the upstream's own request body, validated with its
ranges, recorded as a job whose workflow sends it upstream (or served from the caller's
earlier identical fixed-seed job). `Idempotency-Key`, `Prefer: wait=N` and `strict-tokens`,
`Cache-Control: no-cache`, the `webhook_url` query parameter and a body `webhook` (the same, as
the upstream's family names it) are read here; status codes are decided in
`imagegateway.entrypoints.http.resolver`'s error handlers, like every route's.

No `from __future__ import annotations`: Powertools reads the routes' annotations at runtime.
"""

import re
from functools import partial
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from imagegateway.domain.base import JobKind, JobStatus
from imagegateway.domain.image_requests import ImageRequest
from imagegateway.domain.image_urls import ImageUrl
from imagegateway.domain.prompt_tokens import measure_prompts, refuse_truncated_prompts
from imagegateway.domain.records import Callbacks, one_webhook
from imagegateway.domain.request_kinds import (
    ControlNetRequest,
    Image2ImageRequest,
    InpaintingRequest,
    Text2ImageRequest,
)
from imagegateway.domain.views import JobView
from imagegateway.entrypoints.http.error_answers import json_answer
from imagegateway.entrypoints.http.resolver import (
    MAX_BODY_BYTES,
    PREFER_HEADER,
    caller_identity,
    current_event,
    error_doc,
    job_doc,
    requested_wait,
    with_wait_applied,
)
from imagegateway.entrypoints.idempotency import submit_job_once, validated_key
from imagegateway.entrypoints.wiring import collaborators
from imagegateway.use_cases.completion import fold_into_job
from imagegateway.use_cases.submit_job import submit_job
from imagegateway.use_cases.view_job import view_job

# `Prefer: strict-tokens`: a prompt over the tokens SD 1.5 reads is a 422, not a truncated job.
STRICT_TOKENS = "strict-tokens"
_PREFER_STRICT_TOKENS = re.compile(r"(?:^|,)\s*strict-tokens\s*(?:[;,]|$)", re.IGNORECASE)
# HTTP API v2 lower-cases header names.
IDEMPOTENCY_HEADER = "idempotency-key"

submit_routes = Router()  # type: ignore[no-untyped-call]


SUBMIT_RESPONSES: dict[int, OpenAPIResponse] = {
    200: job_doc("Finished within the `Prefer: wait=N` the caller asked for"),
    202: job_doc("Accepted: poll the status endpoint with the id"),
    400: error_doc("Malformed JSON, or a body that is not UTF-8"),
    409: error_doc("A request with the same Idempotency-Key is still running; retry"),
    413: error_doc(f"The body is larger than {MAX_BODY_BYTES} bytes"),
    415: error_doc("The body is not JSON"),
    422: error_doc(
        "A field is invalid; details name it. With `Prefer: strict-tokens`, also a prompt "
        "over the 75 CLIP tokens SD 1.5 reads (PROMPT_TOO_LONG)"
    ),
    429: error_doc(
        "The caller's daily image budget is spent (BUDGET_EXCEEDED); `resets_at` and "
        "Retry-After say when it starts again"
    ),
    503: error_doc("The gateway has no upstream API key yet (UPSTREAM_NOT_CONFIGURED)"),
}


WebhookUrlQuery = Annotated[
    ImageUrl | None,
    Query(
        description=(
            "Where to POST the job's completion, signed per Standard Webhooks (https, a public "
            "host), retried with backoff for about 28 hours. The same as a body `webhook`; "
            "given both, they must agree."
        )
    ),
]


def _submit(kind: JobKind, request: ImageRequest, webhook_url: str | None) -> Response[Any]:
    """Every kind's submit: the upstream body is built once, here, and passed down as is."""
    event = current_event(submit_routes)
    owner = caller_identity(event)
    key = validated_key(event.headers.get(IDEMPOTENCY_HEADER))
    body = request.upstream_body()
    # Measured once, here: the strict check, the cache, the row and the answer all use it.
    tokens = measure_prompts(body)
    strict = strict_tokens_requested(event)
    if strict:
        refuse_truncated_prompts(tokens)
    webhook = one_webhook(webhook_url, request.webhook)
    callbacks = Callbacks(webhook_url=webhook) if webhook else None
    accept = partial(
        submit_job,
        kind,
        body,
        owner=owner,
        deps=collaborators(),
        tokens=tokens,
        callbacks=callbacks,
        use_cache=not cache_refused(event),
    )
    if key is None:
        view = accept()
    else:
        accepted: list[JobView] = []

        def accept_first() -> JobView:
            accepted.append(accept())
            return accepted[0]

        context = submit_routes.lambda_context
        view = submit_job_once(
            kind, body, owner=owner, key=key, lambda_context=context, accept=accept_first
        )
        if not accepted and callbacks is not None:
            # The same key and body again, with a webhook of its own: told when the job ends.
            fold_into_job(view.id, callbacks, deps=collaborators())
    wait = requested_wait(event)
    if view.status is not JobStatus.PENDING or wait:
        # A finished job (served from the cache) with freshly presigned URLs; or the wait.
        view = view_job(view.id, owner=owner, deps=collaborators(), wait_seconds=wait)
    status = HTTPStatus.ACCEPTED if view.status is JobStatus.PENDING else HTTPStatus.OK
    answer = with_wait_applied(json_answer(status, view), wait)
    if strict:  # RFC 7240: every preference honoured, comma-separated
        answer.headers["Preference-Applied"] = ", ".join(
            [*([f"wait={wait}"] if wait else []), STRICT_TOKENS]
        )
    return answer


def cache_refused(event: APIGatewayProxyEventV2) -> bool:
    """`Cache-Control: no-cache` (or no-store): a fixed-seed request is generated again, never
    served from the caller's earlier identical job."""
    directives = (event.headers.get("cache-control") or "").lower().replace(" ", "").split(",")
    return "no-cache" in directives or "no-store" in directives


def strict_tokens_requested(event: APIGatewayProxyEventV2) -> bool:
    """`Prefer: strict-tokens`, alone or among other preferences (`Prefer: wait=10,
    strict-tokens`, RFC 7240)."""
    return bool(_PREFER_STRICT_TOKENS.search(event.headers.get(PREFER_HEADER) or ""))


@submit_routes.post(
    JobKind.TEXT2IMAGE.submit_path,
    summary="Submit a text2image job (the upstream's own request body)",
    responses=SUBMIT_RESPONSES,
)
def submit_text2image(
    request: Annotated[Text2ImageRequest, Body()], webhook_url: WebhookUrlQuery = None
) -> Response[Any]:
    return _submit(JobKind.TEXT2IMAGE, request, webhook_url)


@submit_routes.post(
    JobKind.IMAGE2IMAGE.submit_path,
    summary="Submit an image2image job (the upstream's own request body)",
    responses=SUBMIT_RESPONSES,
)
def submit_image2image(
    request: Annotated[Image2ImageRequest, Body()], webhook_url: WebhookUrlQuery = None
) -> Response[Any]:
    return _submit(JobKind.IMAGE2IMAGE, request, webhook_url)


@submit_routes.post(
    JobKind.INPAINTING.submit_path,
    summary="Submit an inpainting job (the upstream's own request body)",
    responses=SUBMIT_RESPONSES,
)
def submit_inpainting(
    request: Annotated[InpaintingRequest, Body()], webhook_url: WebhookUrlQuery = None
) -> Response[Any]:
    return _submit(JobKind.INPAINTING, request, webhook_url)


@submit_routes.post(
    JobKind.CONTROLNET.submit_path,
    summary="Submit a ControlNet job (the upstream's own request body)",
    responses=SUBMIT_RESPONSES,
)
def submit_controlnet(
    request: Annotated[ControlNetRequest, Body()], webhook_url: WebhookUrlQuery = None
) -> Response[Any]:
    return _submit(JobKind.CONTROLNET, request, webhook_url)
