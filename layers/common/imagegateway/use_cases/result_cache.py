"""Use case, the fixed-seed result cache: a request with an explicit seed that its caller
already ran successfully (same kind, same upstream body) is the same picture. It is answered
from that job's stored images, as a new job born SUCCESS, with no upstream call, no workflow
and no count against the caller's budget; the view names the original (`cached_from`).

The key is a SHA-256 of the caller, the kind and the body (JSON with sorted keys: the body is
built once from the validated model, so equal requests have equal bodies). Requests without a
seed are never cached: the upstream picks a new random seed each time. A caller forces a fresh
generation with `Cache-Control: no-cache` (HTTP) or `"cache": false` (envelope); the operator
turns the cache off with `ResultCache=false` (RESULT_CACHE).
"""

from __future__ import annotations

from typing import Any

from imagegateway.domain.base import JobKind
from imagegateway.domain.errors import StoredImagesGoneError
from imagegateway.domain.prompt_tokens import PromptTokens
from imagegateway.domain.records import Callbacks, JobRecord, cache_key
from imagegateway.platform.observability import logger, metrics
from imagegateway.use_cases.completion import conclude
from imagegateway.use_cases.ports import Ports


def served_from_cache(
    job_id: str,
    kind: JobKind,
    body: dict[str, Any],
    *,
    owner: str,
    deps: Ports,
    tokens: PromptTokens,
    callbacks: Callbacks | None = None,
) -> JobRecord | None:
    """The new job `job_id`, SUCCESS with the images of the caller's earlier identical
    fixed-seed job, or None (no such job: the request is generated as usual)."""
    key = cache_key(owner, kind, body)
    if key is None or not deps.settings.result_cache:
        return None
    original = deps.jobs.served_by(key)
    if original is None:
        return None
    try:
        images = deps.images.copy_stored(job_id, original.images)
    except StoredImagesGoneError:
        # The originals are gone (their retention ended): generate it again.
        logger.warning("a cached job's images could not be copied", exc_info=True)
        return None
    record = deps.jobs.create_served(
        job_id=job_id,
        owner=owner,
        kind=kind,
        request=body,
        now=deps.clock(),
        original=original,
        images=images,
        cache_key=key,
        callbacks=callbacks,
        tokens=tokens.counts,
        warnings=tokens.warnings,
    )
    logger.info("served from the result cache", extra={"cached_from": original.job_id})
    metrics.add_metric(name="ResultCacheHits", unit="Count", value=1)
    # A job like any other: its completion event, its task token, its webhook.
    conclude(record, deps)
    return record
