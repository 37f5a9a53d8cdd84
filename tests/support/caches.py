"""Every process-wide cache the gateway keeps, cleared between tests."""

from __future__ import annotations

from aws_lambda_powertools.utilities import parameters

from imagegateway.adapters.aws_clients import clear_clients
from imagegateway.adapters.upstream_client import retrying_get_session, submit_session
from imagegateway.entrypoints import authorizer, idempotency
from imagegateway.entrypoints.wiring import collaborators
from imagegateway.platform.settings import get_settings


def clear_all() -> None:
    get_settings.cache_clear()
    clear_clients()
    parameters.clear_caches()
    submit_session.cache_clear()
    retrying_get_session.cache_clear()
    idempotency.clear_cache()
    collaborators.cache_clear()
    authorizer.clear_cache()
