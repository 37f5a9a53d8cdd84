"""The imagepipeline.io client: one POST per job, retried GETs, typed answers and errors.

A submit POST is never sent twice once it may have reached the upstream (a second POST is a
second charge): only connection attempts that provably sent nothing are retried. Status GETs
and image downloads are retried with backoff on connection errors, 429 and 5xx (urllib3 Retry,
honouring Retry-After).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import requests
from aws_lambda_powertools.utilities import parameters
from pydantic import ValidationError
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError
from urllib3.util.retry import Retry

from imagegateway.errors import (
    ConfigurationError,
    UpstreamAuthError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from imagegateway.models import JobStatus, Text2ImageRequest, UpstreamAnswer
from imagegateway.observability import logger
from imagegateway.settings import Settings, get_settings

SUBMIT_PATH = "/sd/text2image/v1"
STATUS_PATH = "/sd/text2image/v1/status/{id}"
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


def _adapter(retry: Retry) -> HTTPAdapter:
    return HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=8)


def _session(retry: Retry) -> requests.Session:
    session = requests.Session()
    session.mount("https://", _adapter(retry))
    session.mount("http://", _adapter(retry))
    return session


@lru_cache(maxsize=1)
def submit_session() -> requests.Session:
    # Only connect errors (nothing was sent) are retried: POST is not an allowed method, and
    # read and status retries are off, so a POST that may have arrived is never sent again.
    return _session(
        Retry(
            total=2,
            connect=2,
            read=0,
            status=0,
            other=0,
            redirect=0,
            allowed_methods=frozenset({"GET"}),
            raise_on_status=False,
        )
    )


@lru_cache(maxsize=1)
def retrying_get_session() -> requests.Session:
    return _session(
        Retry(
            total=5,
            connect=3,
            read=3,
            status=4,
            redirect=2,
            backoff_factor=0.5,
            backoff_max=8,
            status_forcelist=RETRYABLE_STATUSES,
            allowed_methods=frozenset({"GET"}),
            respect_retry_after_header=True,
            raise_on_status=False,
        )
    )


def upstream_api_key(settings: Settings) -> str:
    """The API key from Secrets Manager (cached by Powertools). A plain string, or JSON with an
    `api_key` field. Never logged, returned or stored."""
    if not settings.upstream_api_key_secret_name:
        raise ConfigurationError("UPSTREAM_API_KEY_SECRET_NAME is not set")
    raw = parameters.get_secret(
        settings.upstream_api_key_secret_name, max_age=settings.upstream_api_key_max_age_seconds
    )
    value = raw.decode() if isinstance(raw, bytes) else str(raw)
    if value.lstrip().startswith("{"):
        try:
            value = str(json.loads(value)["api_key"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError("the upstream key secret is JSON without 'api_key'") from exc
    if not value.strip():
        raise ConfigurationError("the upstream key secret is empty")
    return value.strip()


def _nothing_was_sent(exc: requests.ConnectionError) -> bool:
    reason: Any = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, NewConnectionError | ConnectTimeoutError)


class UpstreamClient:
    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings or get_settings()
        self._timeout = (
            self._settings.upstream_connect_timeout_seconds,
            self._settings.upstream_read_timeout_seconds,
        )

    def _headers(self) -> dict[str, str]:
        return {"API-Key": upstream_api_key(self._settings), "Accept": "application/json"}

    def submit(self, request: Text2ImageRequest) -> UpstreamAnswer:
        """POST the job once. A FAILURE answer is returned, not raised: it is the result."""
        url = self._settings.upstream_base + SUBMIT_PATH
        try:
            response = submit_session().post(
                url, json=request.upstream_body(), headers=self._headers(), timeout=self._timeout
            )
        except requests.ConnectTimeout as exc:
            raise UpstreamUnavailableError("could not connect to the upstream in time") from exc
        except requests.ReadTimeout as exc:
            raise UpstreamTimeoutError(
                "the upstream did not answer in time; it may have accepted the job"
            ) from exc
        except requests.ConnectionError as exc:
            if _nothing_was_sent(exc):
                raise UpstreamUnavailableError("could not connect to the upstream") from exc
            raise UpstreamTimeoutError(
                "the upstream connection broke after the request was sent; "
                "it may have accepted the job"
            ) from exc
        answer = self._answer(response, action="submit")
        if answer.status is not JobStatus.FAILURE and not answer.id:
            raise UpstreamProtocolError("the upstream accepted the job without giving its id")
        return answer

    def status(self, upstream_id: str) -> UpstreamAnswer:
        url = self._settings.upstream_base + STATUS_PATH.format(id=upstream_id)
        try:
            response = retrying_get_session().get(
                url, headers=self._headers(), timeout=self._timeout
            )
        except requests.RequestException as exc:
            raise UpstreamUnavailableError(f"status check failed: {type(exc).__name__}") from exc
        return self._answer(response, action="status")

    def _answer(self, response: requests.Response, *, action: str) -> UpstreamAnswer:
        code = response.status_code
        logger.debug("upstream answered", extra={"action": action, "http_status": code})
        if code in (401, 403):
            raise UpstreamAuthError(f"the upstream refused the gateway's API key (HTTP {code})")
        if code in RETRYABLE_STATUSES:
            raise UpstreamUnavailableError(f"the upstream answered HTTP {code} to {action}")
        try:
            body = response.json()
            answer = UpstreamAnswer.model_validate(body)
        except (ValueError, ValidationError) as exc:
            if code >= 400:
                message = f"the upstream answered HTTP {code} to {action}"
                raise UpstreamProtocolError(message) from exc
            raise UpstreamProtocolError(
                f"the upstream's {action} answer is not its documented JSON"
            ) from exc
        if code >= 400 and answer.status is not JobStatus.FAILURE:
            raise UpstreamProtocolError(f"the upstream answered HTTP {code} to {action}")
        if answer.status is JobStatus.FAILURE and not answer.error:
            answer.error = f"the upstream reported FAILURE (HTTP {code}) without a message"
        return answer

    def open_image(self, url: str) -> requests.Response:
        """A streaming GET of one image (retried on 429/5xx and connection errors). Redirects are
        not followed here: the caller checks every hop's address first."""
        return retrying_get_session().get(
            url, stream=True, timeout=self._timeout, allow_redirects=False
        )
