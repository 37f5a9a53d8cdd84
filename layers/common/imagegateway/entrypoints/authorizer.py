"""Entry point, the API-key authorizer: a request's `API-Key` header to an allow (with the key's
owner) or a deny. The key itself is never logged; its fingerprint is."""

from __future__ import annotations

from functools import lru_cache

from imagegateway.adapters.api_key_store import ApiKeyStore, fingerprint
from imagegateway.platform.observability import logger, metrics
from imagegateway.platform.settings import Settings, get_settings

API_KEY_HEADER = "api-key"  # HTTP API v2 lower-cases header names


@lru_cache(maxsize=1)
def _store(table_name: str) -> ApiKeyStore:
    return ApiKeyStore(table_name)


def authorize(headers: dict[str, str], settings: Settings | None = None) -> str | None:
    """The owner the request acts as, or None (denied)."""
    settings = settings or get_settings()
    key = headers.get(API_KEY_HEADER)
    if settings.auth_mode != "API_KEY" or not key:
        return None
    owner = _store(settings.api_keys_table_name).owner_of(key)
    if owner is None:
        logger.info("refused an API key", extra={"key_fingerprint": fingerprint(key)})
        metrics.add_metric(name="ApiKeysRefused", unit="Count", value=1)
    return owner


def clear_cache() -> None:
    _store.cache_clear()
