"""The upstream API key, read from Secrets Manager: on its own, so that what only needs the key
(the submit functions refuse a job before the operator stored it) does not import the upstream
client and its HTTP stack."""

from __future__ import annotations

import json

from imagegateway.domain.errors import ConfigurationError, UpstreamKeyMissingError
from imagegateway.platform.settings import Settings


def upstream_api_key(settings: Settings) -> str:
    """The API key from Secrets Manager (cached by Powertools). A plain string, or JSON with an
    `api_key` field. Never logged, returned or stored."""
    if not settings.upstream_api_key_secret_name:
        raise ConfigurationError("UPSTREAM_API_KEY_SECRET_NAME is not set")
    # Powertools' parameters utility imports boto3 and all its providers: loaded at first read.
    from aws_lambda_powertools.utilities import parameters

    try:
        raw = parameters.get_secret(
            settings.upstream_api_key_secret_name,
            max_age=settings.upstream_api_key_max_age_seconds,
        )
    except parameters.GetParameterError as exc:
        # A secret created empty (a first deploy) has no AWSCURRENT value yet.
        if "ResourceNotFoundException" in str(exc) or "can't find" in str(exc):
            raise UpstreamKeyMissingError("the upstream API key secret has no value yet") from exc
        raise ConfigurationError("the upstream API key secret cannot be read") from exc
    value = raw.decode() if isinstance(raw, bytes) else str(raw)
    if value.lstrip().startswith("{"):
        try:
            value = str(json.loads(value)["api_key"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError("the upstream key secret is JSON without 'api_key'") from exc
    if not value.strip():
        raise UpstreamKeyMissingError("the upstream API key secret is empty")
    return value.strip()
