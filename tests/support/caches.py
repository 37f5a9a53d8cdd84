"""Every process-wide cache the gateway keeps, cleared between tests."""

from __future__ import annotations

from aws_lambda_powertools.utilities import parameters

from imagegateway import authorizer, idempotency
from imagegateway.aws import clear_clients
from imagegateway.collaborators import collaborators
from imagegateway.settings import get_settings
from imagegateway.upstream import retrying_get_session, submit_session


def clear_all() -> None:
    get_settings.cache_clear()
    clear_clients()
    parameters.clear_caches()
    submit_session.cache_clear()
    retrying_get_session.cache_clear()
    idempotency.clear_cache()
    collaborators.cache_clear()
    authorizer.clear_cache()
