"""Webhooks for ended jobs (contract: docs/design.md, "Webhooks"): the message, its Standard
Webhooks signature, the retry schedule, the queue messages wait on, and the sender.

- A message is built once, when the job ends, and queued: its id (`msg_<job id>`) and its body
  are the same on every attempt, so a receiver can drop a repeat by its id. Only
  `webhook-timestamp` and the signature are made afresh for each attempt.
- The first attempt is immediate; a failed one is tried again after RETRY_SCHEDULE_SECONDS
  (Standard Webhooks' schedule, about 27.6 h in all). The queue does the waiting: its consumer
  (deliver_webhooks) hides a failed message for the next delay.
- The URL is the caller's, so it is as hostile as an image URL and gets the same checks
  (downloads.py), except the download allow-list (any host the caller names): deployed, https
  on the default port only, every resolved address public, the connection made to the checked
  address with TLS and Host for the name. Redirects are never followed: a 3xx is a failure.
- An attempt ends by its deadline (`webhook_timeout_seconds` after it starts), whatever the
  receiver does (attempt_deadline.py): its status decides, its body is never read. None starts
  without time for a whole one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from http.client import HTTPException

import certifi
from pydantic import BaseModel, ConfigDict, Field
from urllib3.exceptions import HTTPError
from urllib3.util import Timeout

from imagegateway.adapters.attempt_deadline import AttemptDeadline, watched_pool
from imagegateway.adapters.aws_clients import sqs_client
from imagegateway.adapters.downloads import (
    DownloadTarget,
    Resolver,
    check_download_url,
    resolve_host,
)
from imagegateway.adapters.webhook_secrets import WebhookSecrets, signing_key
from imagegateway.domain.errors import (
    ConfigurationError,
    GatewayError,
    ImageDownloadError,
    ImageRejectedError,
)
from imagegateway.domain.events import Completion, CompletionDetail, DetailType
from imagegateway.platform.observability import logger
from imagegateway.platform.settings import Settings, get_settings
from imagegateway.platform.time_budget import remaining_seconds

MESSAGE_ID_PREFIX = "msg_"
USER_AGENT = "imagepipeline-gateway-webhooks/1"
# Delays after each failed attempt (the first attempt is immediate): 5 s, 5 min, 30 min, 2 h,
# 5 h, 10 h, 10 h. The queue's redrive policy must allow MAX_ATTEMPTS receives.
RETRY_SCHEDULE_SECONDS: tuple[int, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
MAX_ATTEMPTS = len(RETRY_SCHEDULE_SECONDS) + 1
# Any host: the caller chose it. Every other rule of downloads.py still holds.
ANY_HOST = ("*",)
# A message id made up for a completion without a job (uuid4().hex); job ids keep their dashes.
_RANDOM_ID = re.compile(r"[0-9a-f]{32}")


class WebhookDeliveryError(GatewayError):
    """One attempt failed (a non-2xx or redirect answer, a timeout, no connection): it is tried
    again on the schedule."""


class WebhookRejectedError(GatewayError):
    """The webhook URL is refused (the SSRF rules): it never can be delivered, so it is not
    tried again."""


class WebhookEventType(StrEnum):
    SUCCEEDED = "image.succeeded"
    FAILED = "image.failed"


_EVENT_TYPES = {
    DetailType.SUCCEEDED: WebhookEventType.SUCCEEDED,
    DetailType.FAILED: WebhookEventType.FAILED,
}


class WebhookMessage(BaseModel):
    """One webhook as it waits on the queue: where it goes, its id and the exact JSON text
    POSTed (the signature covers these bytes, so it is kept as text, never re-serialized)."""

    model_config = ConfigDict(frozen=True)

    webhook_id: str = Field(min_length=1, max_length=256)
    url: str = Field(min_length=1)
    body: str
    # Whose webhook it is: it is signed with that owner's secrets, and no other's.
    owner: str = Field(min_length=1)

    @property
    def job_id(self) -> str | None:
        """The job the message tells of, from its id; None for a made-up id."""
        # msg_<job id>, or msg_<job id>.<variant> for another request folded into the job.
        suffix = self.webhook_id.removeprefix(MESSAGE_ID_PREFIX).split(".", 1)[0]
        return None if _RANDOM_ID.fullmatch(suffix) else suffix


# --- the message ----------------------------------------------------------------------------


def webhook_message(
    url: str, completion: Completion, *, now: datetime, owner: str, variant: str = ""
) -> WebhookMessage:
    """The message for a completion, to be signed with `owner`'s secrets. Its `timestamp` is when
    the job completed (its timings' `completed_at`, else `now`), so building it twice gives the
    same body. `variant` names another request folded into the job (a keyed duplicate with
    callbacks of its own): its webhook has an id of its own, `msg_<job id>.<variant>`."""
    detail = completion.detail
    event_type = _EVENT_TYPES.get(completion.detail_type)
    if event_type is None:
        raise ValueError(f"no webhook for a {completion.detail_type.value!r} completion")
    payload = {
        "type": event_type.value,
        "timestamp": _iso_utc(_completed_at(detail, now)),
        "data": detail.model_dump(mode="json", exclude_none=True),
    }
    webhook_id = f"{MESSAGE_ID_PREFIX}{detail.job_id or uuid.uuid4().hex}"
    return WebhookMessage(
        webhook_id=f"{webhook_id}.{variant}" if variant else webhook_id,
        url=url,
        body=json.dumps(payload, separators=(",", ":")),
        owner=owner,
    )


def _completed_at(detail: CompletionDetail, now: datetime) -> datetime:
    completed = detail.timings.completed_at if detail.timings else None
    return completed or now


def _iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with a `Z` (a naive datetime is taken as UTC)."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.isoformat().replace("+00:00", "Z")


# --- the signature --------------------------------------------------------------------------


def sign(secret: str, webhook_id: str, timestamp: int, body: str) -> str:
    """`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, one signature of `webhook-signature`."""
    signed = f"{webhook_id}.{timestamp}.{body}".encode()
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return f"v1,{base64.b64encode(digest).decode()}"


def signatures(secrets: Sequence[str], webhook_id: str, timestamp: int, body: str) -> str:
    """The `webhook-signature` header: one signature per secret, space-separated (Standard
    Webhooks), so a receiver holding either secret of a rotation verifies it."""
    if not secrets:
        raise ConfigurationError("no webhook signing secret")
    return " ".join(sign(secret, webhook_id, timestamp, body) for secret in secrets)


# --- the schedule ---------------------------------------------------------------------------


def next_delay_seconds(attempt: int) -> int | None:
    """Seconds to wait after attempt number `attempt` (1-based) failed; None after the last."""
    if attempt < 1:
        raise ValueError(f"attempts are numbered from 1, not {attempt}")
    if attempt > len(RETRY_SCHEDULE_SECONDS):
        return None
    return RETRY_SCHEDULE_SECONDS[attempt - 1]


# --- the queue ------------------------------------------------------------------------------


class WebhookQueue:
    """Where messages wait for the deliver_webhook function (which retries them)."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings or get_settings()

    def enqueue(self, message: WebhookMessage) -> None:
        if not self._settings.webhook_queue_url:
            raise ConfigurationError("WEBHOOK_QUEUE_URL is not set")
        sqs_client().send_message(
            QueueUrl=self._settings.webhook_queue_url, MessageBody=message.model_dump_json()
        )
        logger.info("webhook queued", extra={"webhook_id": message.webhook_id})


# --- the sender -----------------------------------------------------------------------------


def check_webhook_url(
    url: str, settings: Settings, resolve: Resolver = resolve_host
) -> DownloadTarget:
    """The checked target of a webhook URL, resolved once: the download rules without the
    download allow-list. A refused URL is a WebhookRejectedError; a name that does not resolve
    (perhaps for now) a WebhookDeliveryError."""
    try:
        return check_download_url(url, settings, resolve, allowed_hosts=ANY_HOST)
    except ImageRejectedError as exc:
        reason = exc.message.removeprefix("refusing the image URL: ")
        raise WebhookRejectedError(f"refusing the webhook URL: {reason}") from exc
    except ImageDownloadError as exc:
        raise WebhookDeliveryError("the webhook host could not be resolved") from exc


def signed_headers(
    message: WebhookMessage, *, secrets: Sequence[str], timestamp: int
) -> dict[str, str]:
    return {
        "webhook-id": message.webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signatures(secrets, message.webhook_id, timestamp, message.body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


class WebhookNotAttempted(WebhookDeliveryError):
    """The invocation had no time left for a whole attempt, so none was started: the message
    should come back at once."""


# The share of what is left of an attempt that the TCP connect may take, and then again the TLS
# handshake (CPython bounds a whole handshake by the socket's timeout, the connect timeout here):
# at a half each, the two together end by the deadline, from which on the watchdog holds it.
CONNECT_SHARE = 0.5


class WebhookSender:
    """POSTs messages, one attempt each, to the address their URL's check saw (downloads.py's
    pinned pools). Each attempt ends by its deadline, `webhook_timeout_seconds` after it starts,
    whatever the receiver does; the answer's status decides, its body is never read.
    Each is signed with its owner's secrets (webhook_secrets.py). `secrets` (an owner's
    signing secrets), `resolve` and `clock` are seams for tests. Attempts may run in parallel
    threads."""

    def __init__(
        self,
        settings: Settings,
        *,
        secrets: Callable[[str], Sequence[str]] | None = None,
        resolve: Resolver = resolve_host,
        clock: Callable[[], float] = time.time,
        ca_certs: str | None = None,
    ) -> None:
        self._settings = settings
        self._secrets = secrets or WebhookSecrets(settings).signing_secrets_for
        self._resolve = resolve
        self._clock = clock
        self._ca_certs = ca_certs or certifi.where()

    @property
    def attempt_seconds(self) -> float:
        """How long one attempt may take, from its start to its deadline."""
        return self._settings.webhook_timeout_seconds

    def signing_secrets(self, owner: str) -> Sequence[str]:
        """The secrets the owner's webhooks are signed with (read from Secrets Manager, cached)."""
        return self._secrets(owner)

    def deliver(self, message: WebhookMessage, *, secrets: Sequence[str] | None = None) -> int:
        """One attempt; the 2xx status on success. Raises WebhookRejectedError (never
        deliverable), WebhookNotAttempted (no time for an attempt) or WebhookDeliveryError
        (this attempt failed). `secrets`: the owner's signing secrets, if already read."""
        # Read before the attempt's clock starts: Secrets Manager's time is not the receiver's.
        signing = secrets if secrets is not None else self._secrets(message.owner)
        deadline = AttemptDeadline(self._attempt_seconds())
        target = check_webhook_url(message.url, self._settings, self._resolve)
        headers = signed_headers(message, secrets=signing, timestamp=int(self._clock()))
        with deadline:
            status = self._post(target, message, headers, deadline)
        if not 200 <= status < 300:
            logger.warning(
                "webhook answered non-2xx", extra={"host": target.host, "status": status}
            )
            raise WebhookDeliveryError(f"the webhook answered {status}")
        return status

    def _post(
        self,
        target: DownloadTarget,
        message: WebhookMessage,
        headers: dict[str, str],
        deadline: AttemptDeadline,
    ) -> int:
        """The answer's status, read by the deadline. A pool of its own per attempt: its
        connections carry the deadline, and none outlives the attempt."""
        pool = watched_pool(target, deadline, ca_certs=self._ca_certs)
        try:
            connect = deadline.remaining() * CONNECT_SHARE
            response = pool.urlopen(
                "POST",
                target.request_target,
                body=message.body.encode(),
                headers={"Host": target.host_header, **headers},
                timeout=Timeout(connect=connect, read=deadline.remaining()),
                retries=False,  # the queue retries, on the schedule
                redirect=False,
                assert_same_host=False,
                preload_content=False,
            )
            if not deadline.met():
                raise TimeoutError("the answer's head ended only with the attempt's deadline")
        except (HTTPError, HTTPException, OSError) as exc:
            raise self._unanswered(target, deadline, exc) from exc
        finally:
            pool.close()
        # Not a byte of the body is read (a receiver could send a huge or endless one).
        response.close()
        response.release_conn()
        return response.status

    @staticmethod
    def _unanswered(
        target: DownloadTarget, deadline: AttemptDeadline, exc: Exception
    ) -> WebhookDeliveryError:
        logger.warning(
            "webhook attempt failed",
            extra={"host": target.host, "error": repr(exc), "deadline_passed": deadline.expired},
        )
        if deadline.expired:
            return WebhookDeliveryError(f"the webhook did not answer within {deadline.seconds:g} s")
        return WebhookDeliveryError(f"the webhook was not answered: {type(exc).__name__}")

    def _attempt_seconds(self) -> float:
        """A whole attempt's time, or none: an attempt cut short by the invocation's end would
        fail a receiver that did nothing wrong."""
        seconds = self.attempt_seconds
        if remaining_seconds() < seconds:
            raise WebhookNotAttempted("no time was left in this invocation for a whole attempt")
        return seconds

    def close(self) -> None:
        """Nothing is kept between attempts (each has its own pool); kept for callers."""
