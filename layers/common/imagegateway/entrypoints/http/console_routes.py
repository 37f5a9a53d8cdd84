"""GET /console: the web console, one HTML page for the calling owner's jobs.

The page is plain HTML, CSS and a little JavaScript (`console/`, shipped in the layer; no build
step, no library) that calls the JSON API on the same origin: GET /v1/jobs, GET /v1/usage,
GET /v1/webhooks/secret, POST /sd/{kind}/v1, GET /sd/{kind}/v1/status/{id} and POST
/v1/jobs/{id}/cancel. The page itself holds no data and is served without auth on both APIs (as
/swagger is): a browser's navigation carries no API key and no SigV4 signature. Every data call
it makes is authenticated as any other: the keyed API's `API-Key` (the page asks for the key and
keeps it in the tab's sessionStorage), the IAM API's signature (through a SigV4 signing proxy),
or, on the local stack, the local caller (`X-Local-Caller` from a field the page shows only
there).

Its Content-Security-Policy allows only the page's own inline script and style (by hash), calls
to its own origin, and images from the bucket's origin (the presigned URLs'): the page can make
no request to a third party.

No `from __future__ import annotations`: Powertools reads the routes' annotations at runtime.
"""

import base64
import hashlib
import html
import json
import re
from functools import cache
from http import HTTPStatus
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from imagegateway.domain.base import JobKind
from imagegateway.domain.request_kinds import REQUEST_MODELS
from imagegateway.entrypoints.wiring import collaborators

CONSOLE_PATH = "/console"
# The page's files, beside this module (package data of imagegateway.entrypoints.http).
ASSETS = ("imagegateway.entrypoints.http", "console")
# Fields every kind's form has; any other required field is the kind's own (an image URL, ...).
COMMON_FIELDS = frozenset({"model_id", "prompt"})

console_routes = Router()  # type: ignore[no-untyped-call]


def _asset(name: str) -> str:
    package, folder = ASSETS
    return resources.files(package).joinpath(folder, name).read_text("utf-8")


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def kinds_and_their_fields() -> dict[str, list[str]]:
    """Each kind the API takes, with the fields it requires beyond a model and a prompt (the
    form asks for them): the page follows the request models, a new kind included."""
    return {
        kind.value: [
            name
            for name, field in REQUEST_MODELS[kind].model_fields.items()
            if field.is_required() and name not in COMMON_FIELDS
        ]
        for kind in JobKind
    }


def bucket_origin() -> str:
    """Where the presigned image URLs point (scheme, host and port), for img-src. Presigning
    calls nothing: the URL of any key has the bucket's origin."""
    url = urlsplit(collaborators().images.presigned_url("console"))
    return f"{url.scheme}://{url.netloc}"


@cache
def console_page() -> tuple[str, str]:
    """The page, with its style and script inline, and the Content-Security-Policy that allows
    exactly those, the API on the same origin and images from the bucket."""
    style, script = _asset("console.css"), _asset("console.js")
    page = (
        _asset("console.html")
        .replace("{{kinds}}", html.escape(json.dumps(kinds_and_their_fields()), quote=True))
        .replace("{{style}}", style)
        .replace("{{script}}", script)
    )
    assert not re.search(r"\{\{\w+\}\}", page), "a placeholder of console.html was not filled"
    policy = "; ".join(
        [
            "default-src 'none'",
            f"script-src {_sha256(script)}",
            f"style-src {_sha256(style)}",
            "connect-src 'self'",
            f"img-src {bucket_origin()}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )
    return page, policy


@console_routes.get(CONSOLE_PATH, include_in_schema=False)
def get_console() -> Response[Any]:
    page, policy = console_page()
    return Response(
        status_code=HTTPStatus.OK.value,
        content_type="text/html; charset=utf-8",
        body=page,
        headers={
            "Content-Security-Policy": policy,
            "X-Content-Type-Options": "nosniff",
            # The page's URLs (presigned image URLs on its links) go to no other site.
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-cache",
        },
    )
