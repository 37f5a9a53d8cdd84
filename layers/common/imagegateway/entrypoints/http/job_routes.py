"""The HTTP routes about a caller's jobs: a job's status (long-polled with `Prefer: wait=N`),
the list of the caller's jobs, cancelling one, and the caller's usage today. Status codes are
decided in `imagegateway.entrypoints.http.resolver`'s error handlers, like every route's.

No `from __future__ import annotations`: Powertools reads the routes' annotations at runtime.
"""

from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, Field

from imagegateway.domain.base import JobKind, JobStatus
from imagegateway.domain.usage import Usage
from imagegateway.domain.views import JobList
from imagegateway.entrypoints.http.error_answers import json_answer
from imagegateway.entrypoints.http.resolver import (
    caller_identity,
    current_event,
    error_doc,
    job_doc,
    requested_wait,
    with_wait_applied,
)
from imagegateway.entrypoints.wiring import collaborators
from imagegateway.use_cases.cancel_job import cancel_job
from imagegateway.use_cases.list_jobs import MAX_PAGE, list_jobs
from imagegateway.use_cases.view_job import view_job
from imagegateway.use_cases.webhook_secret import webhook_secret_of

STATUS_PATH = "/sd/<kind>/v1/status/<job_id>"
LIST_PATH = "/v1/jobs"
CANCEL_PATH = "/v1/jobs/<job_id>/cancel"
USAGE_PATH = "/v1/usage"
WEBHOOK_SECRET_PATH = "/v1/webhooks/secret"  # noqa: S105 (a route, not a secret)

job_routes = Router()  # type: ignore[no-untyped-call]

LIST_RESPONSES: dict[int, OpenAPIResponse] = {
    200: {
        "description": "One page of the caller's jobs, newest first",
        "content": {"application/json": {"model": JobList}},
    },
    400: error_doc("A cursor this gateway did not hand to this caller"),
    422: error_doc("A parameter is invalid; details name it"),
}


@job_routes.get(
    STATUS_PATH,
    summary="A job's status, with freshly presigned download URLs once it succeeded",
    description="`Prefer: wait=N` (N <= 25) answers once the job ends or after N seconds.",
    responses={
        200: job_doc("The job"),
        404: error_doc("No such job (or not yours, or another kind)"),
    },
)
def get_status(kind: JobKind, job_id: str) -> Response[Any]:
    event = current_event(job_routes)
    wait = requested_wait(event)
    view = view_job(
        job_id, owner=caller_identity(event), kind=kind, deps=collaborators(), wait_seconds=wait
    )
    return with_wait_applied(json_answer(HTTPStatus.OK, view), wait)


@job_routes.get(LIST_PATH, summary="The caller's jobs, newest first", responses=LIST_RESPONSES)
def get_jobs(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Jobs per page")] = 20,
    cursor: Annotated[str | None, Query(max_length=2048, description="From next_cursor")] = None,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status")] = None,
) -> Response[Any]:
    page = list_jobs(
        owner=caller_identity(current_event(job_routes)),
        limit=limit,
        cursor=cursor,
        status=status,
        deps=collaborators(),
    )
    return json_answer(HTTPStatus.OK, page)


@job_routes.get(
    USAGE_PATH,
    summary="The caller's usage today: images asked of the upstream, and its daily budget",
    responses={
        200: {
            "description": "Today's (UTC) count, the budget (null: unlimited) and its reset",
            "content": {"application/json": {"model": Usage}},
        }
    },
)
def get_usage() -> Response[Any]:
    deps = collaborators()
    owner = caller_identity(current_event(job_routes))
    usage = deps.usage.today(owner, now=deps.clock())
    # With nulls: a null budget is the answer "unlimited", not a field left out.
    return Response(
        status_code=HTTPStatus.OK.value,
        content_type="application/json",
        body=usage.model_dump(mode="json"),
    )


class WebhookSecret(BaseModel):
    secret: str = Field(description="The caller's own Standard Webhooks secret (whsec_...).")


@job_routes.get(
    WEBHOOK_SECRET_PATH,
    summary="The caller's own webhook secret: every webhook of its jobs is signed with it",
    responses={
        200: {
            "description": "The secret, for the caller's webhook receivers to verify with",
            "content": {"application/json": {"model": WebhookSecret}},
        }
    },
)
def get_webhook_secret() -> Response[Any]:
    owner = caller_identity(current_event(job_routes))
    secret = webhook_secret_of(owner, collaborators())
    # A secret: never kept by a cache or a proxy on the way.
    return Response(
        status_code=HTTPStatus.OK.value,
        content_type="application/json",
        body=WebhookSecret(secret=secret).model_dump(),
        headers={"Cache-Control": "no-store"},
    )


@job_routes.post(
    CANCEL_PATH,
    summary="Stop following a job: it ends FAILURE with error_code CANCELLED",
    responses={
        200: job_doc("The job, cancelled (again, for a job already cancelled)"),
        404: error_doc("No such job (or not yours)"),
        409: error_doc("The job had already ended; its status is in the answer"),
    },
)
def post_cancel(job_id: str) -> Response[Any]:
    owner = caller_identity(current_event(job_routes))
    view = cancel_job(job_id, owner=owner, deps=collaborators())
    return json_answer(HTTPStatus.OK, view)
