"""Sample events from events/, the same files used for local invokes."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

from local.aws.principals import unique_id_of

EVENTS = Path(__file__).resolve().parents[2] / "events"


@cache
def _read(name: str) -> str:
    return (EVENTS / f"{name}.json").read_text()


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(_read(name))
    return copy.deepcopy(event)


def http_event_with_body(
    body: Any, *, raw: str | None = None, content_type: str | None = "application/json"
) -> dict[str, Any]:
    """The sample submit event with another body (a JSON value, or `raw` text as sent)."""
    event = load_event("submit")
    event["body"] = raw if raw is not None else json.dumps(body)
    if content_type is None:
        event["headers"].pop("content-type", None)
    else:
        event["headers"]["content-type"] = content_type
    return event


def status_event(job_id: str, kind: str = "text2image") -> dict[str, Any]:
    event = load_event("job_status")
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/sd/{kind}/v1/status/{job_id}"
    event["pathParameters"] = {"kind": kind, "job_id": job_id}
    return event


def with_caller(event: dict[str, Any], user_arn: str) -> dict[str, Any]:
    iam = event["requestContext"]["authorizer"]["iam"]
    iam["userArn"] = user_arn
    iam["userId"] = iam["callerId"] = unique_id_of(user_arn)
    return event
