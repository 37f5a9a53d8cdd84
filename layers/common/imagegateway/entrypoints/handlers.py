"""The Lambda entry points' shared shape: Powertools logging, tracing and metrics, and the
invocation's time budget, around an HTTP resolver, one workflow operation on the job ticket, or
a scheduled operation. Every function's app.py is one of these.

Each entry names the settings its function cannot work without (`requires`); they are checked
before any work, so a function deployed without one fails on its first invocation with the
variable's name, instead of part-way through a job."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from imagegateway.entrypoints.wiring import collaborators
from imagegateway.platform.observability import logger, metrics, tracer
from imagegateway.platform.settings import get_settings
from imagegateway.platform.time_budget import invocation_budget

if TYPE_CHECKING:
    # Types only: the HTTP functions import the event handler with their routes (api.py), and
    # each function imports what its operation uses; a workflow task, the models (below).
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
    from pydantic import BaseModel

    from imagegateway.domain.tickets import JobTicket
    from imagegateway.use_cases.ports import Ports

LambdaHandler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


@dataclass(frozen=True)
class EntryPoint:
    """What Lambda calls, and the settings (field names) the function requires."""

    handler: LambdaHandler
    required_settings: tuple[str, ...]

    def __call__(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        # Settings are cached per process: after the cold start this is a few attribute reads.
        get_settings().require(*self.required_settings)
        return self.handler(event, context)


def http_handler(
    app: APIGatewayHttpResolver,
    *,
    requires: tuple[str, ...] = (),
    lazy_paths: Mapping[str, Callable[[], APIGatewayHttpResolver]] | None = None,
) -> EntryPoint:
    """`app` resolves every request, except one for a path of `lazy_paths` (the event's
    rawPath): that one goes to the resolver its factory makes (and caches) when first asked, so
    a route whose machinery is costly to import (the OpenAPI document) is not in the cold start
    of the requests that never ask for it."""
    lazy = dict(lazy_paths or {})

    @logger.inject_lambda_context(
        correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True
    )
    @tracer.capture_lambda_handler
    @metrics.log_metrics(capture_cold_start_metric=True)
    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        make = lazy.get(str(event.get("rawPath") or "")) if lazy else None
        resolver = app if make is None else make()
        with invocation_budget(context):
            return resolver.resolve(event, context)

    return EntryPoint(lambda_handler, requires)


def workflow_task(
    operation: Callable[[JobTicket, Ports], BaseModel], *, requires: tuple[str, ...] = ()
) -> EntryPoint:
    """A state machine task: the state's JSON in as a JobTicket, the operation's model out.
    Typed errors escape on purpose: their class name is what the ASL's Retry and Catch match."""
    from imagegateway.domain.tickets import JobTicket

    @logger.inject_lambda_context(clear_state=True)
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        ticket = JobTicket.model_validate(event)
        logger.append_keys(job_id=ticket.job_id)
        with invocation_budget(context):
            result = operation(ticket, collaborators())
        return result.model_dump(mode="json", exclude_none=True, by_alias=True)

    return EntryPoint(lambda_handler, requires)


def scheduled_task(
    operation: Callable[[Ports], BaseModel], *, requires: tuple[str, ...] = ()
) -> EntryPoint:
    """A scheduled run (EventBridge Scheduler): the event carries nothing the run needs."""

    @logger.inject_lambda_context(clear_state=True)
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        with invocation_budget(context):
            result = operation(collaborators())
        return result.model_dump(mode="json")

    return EntryPoint(lambda_handler, requires)


def queue_consumer(
    operation: Callable[[dict[str, Any], LambdaContext], dict[str, Any]],
    *,
    requires: tuple[str, ...] = (),
) -> EntryPoint:
    """An SQS event-source mapping's consumer: the batch in, the partial batch response out
    (`operation` is usually `queue_batch.process_batch` around a per-record handler)."""

    @logger.inject_lambda_context(clear_state=True)
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        with invocation_budget(context):
            return operation(event, context)

    return EntryPoint(lambda_handler, requires)


def authorizer_entry(
    authorize: Callable[[dict[str, str]], str | None], *, requires: tuple[str, ...] = ()
) -> EntryPoint:
    """An HTTP API Lambda authorizer (payload 2.0, simple responses): the request's headers in,
    `isAuthorized` and the owner out."""

    @logger.inject_lambda_context(clear_state=True)
    @metrics.log_metrics
    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
        owner = authorize(headers)
        if owner is None:
            return {"isAuthorized": False}
        return {"isAuthorized": True, "context": {"owner": owner}}

    return EntryPoint(lambda_handler, requires)
