"""Idempotency-Key with Stripe's semantics, on Powertools Idempotency (DynamoDB).

- the same key (per caller) with the same body returns the first answer; no second upstream call;
- the same key with another body is refused (IdempotencyValidationError, a 422);
- a duplicate arriving while the first is still running gets IdempotencyAlreadyInProgressError
  (a retryable 409).
The kept answer is the job id, recorded before anything is sent upstream: the upstream POST
happens in that job's workflow (named by the job id), so a retry with the same key can never
POST again, whatever the upstream did. When the submit fails before a job exists (no upstream
key yet), nothing is kept and the same key may retry.

The Powertools utility (its DynamoDB persistence layer, JMESPath, serializers) is imported at
the first submit, not with this module: the routes and the intake name the two errors below,
which are the gateway's own, raised in place of Powertools' errors of the same names, so a
function that never submits (job_status serves the submit routes' OpenAPI document) never
loads it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from imagegateway.domain.base import JobKind
from imagegateway.domain.errors import (
    ConfigurationError,
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
    InvalidIdempotencyKeyError,
)
from imagegateway.domain.views import JobView
from imagegateway.platform.settings import get_settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
    from aws_lambda_powertools.utilities.typing import LambdaContext

MAX_KEY_LENGTH = 255


class IdempotentSubmission(BaseModel):
    caller: str
    key: str
    # Validated together: the same key for another kind or body is a different request.
    request: dict[str, Any]


def validated_key(raw: str | None) -> str | None:
    if raw is None:
        return None
    key = raw.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidIdempotencyKeyError(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters"
        )
    return key


@lru_cache(maxsize=1)
def _submitter() -> tuple[IdempotencyConfig, Callable[..., JobView]]:
    # Built on first use, not at import: the table name comes from settings, and the
    # persistence layer makes its boto3 client when constructed.
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )
    from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import (
        PydanticSerializer,
    )

    settings = get_settings()
    if not settings.idempotency_table_name:
        raise ConfigurationError("IDEMPOTENCY_TABLE_NAME is not set")
    config = IdempotencyConfig(
        event_key_jmespath="[caller, key]",
        payload_validation_jmespath="request",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=settings.idempotency_expiry_seconds,
    )
    persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table_name)

    @idempotent_function(
        data_keyword_argument="submission",
        config=config,
        persistence_store=persistence,
        output_serializer=PydanticSerializer(model=JobView),
    )
    def submit_once(submission: IdempotentSubmission, accept: Callable[[], JobView]) -> JobView:
        # Keyed by `submission`; `accept` is the entry's own accept use case, run the first time.
        return accept()

    return config, submit_once


def submit_job_once(
    kind: JobKind,
    body: dict[str, Any],
    *,
    owner: str,
    key: str,
    lambda_context: LambdaContext | None,
    accept: Callable[[], JobView],
) -> JobView:
    """`accept()` (the entry's accept use case for this request) the first time the caller
    sends `key`; the first answer again for the same key and request; refused for the same key
    and another request."""
    config, submit_once = _submitter()
    if lambda_context is not None:
        # An in-progress record then expires with this invocation, so a crashed attempt does
        # not block its key for the whole expiry window.
        config.register_lambda_context(lambda_context)
    from aws_lambda_powertools.utilities.idempotency import exceptions

    submission = IdempotentSubmission(
        caller=owner, key=key, request={"kind": kind.value, "body": body}
    )
    try:
        view: JobView = submit_once(submission=submission, accept=accept)
    except exceptions.IdempotencyValidationError as exc:
        raise IdempotencyValidationError(*exc.args) from exc
    except exceptions.IdempotencyAlreadyInProgressError as exc:
        raise IdempotencyAlreadyInProgressError(*exc.args) from exc
    return view


def clear_cache() -> None:
    _submitter.cache_clear()
