"""Use case, HTTP: a caller's jobs, newest first, a page at a time.

The cursor is opaque to callers: the position in the caller's own index partition, with the
caller it was made for, base64url-encoded. A cursor made for another caller is refused (and
could not reach other jobs anyway: the query's key is always the caller's own). So is an edited
one: its key must be exactly the index's key as DynamoDB hands it back (three strings, the
owner's own partition), or DynamoDB (or boto3, before it) would answer a 500 for it."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from imagegateway.domain.base import JobStatus
from imagegateway.domain.errors import InvalidCursorError, UnreadableInputError
from imagegateway.domain.json_text import read_json
from imagegateway.domain.views import JobList
from imagegateway.use_cases.ports import Ports
from imagegateway.use_cases.view_job import view_of

MAX_PAGE = 100
# The OwnerByCreated index's LastEvaluatedKey: the table's key and the index's, all strings.
CURSOR_KEY_FIELDS = frozenset({"job_id", "owner", "created_at"})
# A job id, an owner, a timestamp: far shorter than this.
MAX_CURSOR_FIELD_CHARS = 512


def encode_cursor(owner: str, key: dict[str, Any]) -> str:
    raw = json.dumps({"owner": owner, "key": key}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(owner: str, cursor: str) -> dict[str, Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = read_json(base64.urlsafe_b64decode(padded.encode("ascii")), what="the cursor")
    except (ValueError, binascii.Error, UnreadableInputError) as exc:
        raise InvalidCursorError("the cursor is not one this gateway handed out") from exc
    key = data.get("key") if isinstance(data, dict) else None
    if not isinstance(key, dict) or data.get("owner") != owner:
        raise InvalidCursorError("the cursor is not one this gateway handed out to you")
    if (
        set(key) != CURSOR_KEY_FIELDS
        or key["owner"] != owner
        or not all(
            isinstance(value, str) and 0 < len(value) <= MAX_CURSOR_FIELD_CHARS
            for value in key.values()
        )
    ):
        raise InvalidCursorError("the cursor was edited: send next_cursor as it was handed out")
    return key


def list_jobs(
    *,
    owner: str,
    limit: int,
    cursor: str | None,
    status: JobStatus | None,
    deps: Ports,
) -> JobList:
    start = decode_cursor(owner, cursor) if cursor else None
    records, last_key = deps.jobs.page_of_owner(
        owner, limit=min(limit, MAX_PAGE), start_key=start, status=status
    )
    return JobList(
        jobs=[view_of(record, deps) for record in records],
        next_cursor=encode_cursor(owner, last_key) if last_key else None,
    )
