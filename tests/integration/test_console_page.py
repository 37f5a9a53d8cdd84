"""GET /console on the status function: the web console's page, whole (its style and script
inline), under a Content-Security-Policy that lets it run and reach nothing but its own origin
and the images bucket. (tests/e2e/test_console_browser.py drives it in a browser.)"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from typing import Any
from urllib.parse import urlsplit

from imagegateway.adapters.aws_clients import s3_client
from imagegateway.domain.base import JobKind
from local.aws.resources import LocalStack
from tests.support.events import load_event
from tests.support.stack import invoke


def console_answer(stack: LocalStack) -> Any:
    event = load_event("job_status")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/console"
    event["routeKey"] = "GET /console"
    event.pop("pathParameters")
    return invoke(stack, "job_status", event)


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_the_page_runs_under_a_policy_that_allows_only_the_gateway_and_the_bucket(
    stack: LocalStack,
) -> None:
    # Given GET /console on the status function
    # When it answers
    answer = console_answer(stack)
    headers = {name.lower(): value for name, value in answer["headers"].items()}
    page = answer["body"]
    policy = dict(
        part.strip().split(" ", 1) for part in headers["content-security-policy"].split(";")
    )
    # Then it is the HTML page, its own inline script and style allowed by their hashes only
    assert answer["statusCode"] == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    (script,) = re.findall(r"<script>(.*?)</script>", page, re.S)
    (style,) = re.findall(r"<style>(.*?)</style>", page, re.S)
    assert policy["script-src"] == _hash(script)
    assert policy["style-src"] == _hash(style)
    # And it may call only its own origin, and load images only from the bucket's
    presigned = s3_client().generate_presigned_url(
        "get_object", Params={"Bucket": stack.bucket_name, "Key": "jobs/j/0.png"}
    )
    parts = urlsplit(presigned)
    assert policy["img-src"] == f"{parts.scheme}://{parts.netloc}"
    assert (policy["default-src"], policy["connect-src"]) == ("'none'", "'self'")
    assert {"base-uri", "form-action", "frame-ancestors"} <= policy.keys()
    assert headers["referrer-policy"] == "no-referrer"
    # And the page names no host at all: every request it makes is relative to where it is
    assert not re.search(r"(https?:)?//[\w.-]+\.\w", page.replace("</", "<"))


def test_the_page_offers_every_kind_with_the_fields_it_requires(stack: LocalStack) -> None:
    # Given the page
    page = console_answer(stack)["body"]
    # When the kinds it was given are read
    (kinds,) = re.findall(r'data-kinds="([^"]*)"', page)
    # Then they are the API's kinds, each with the image URLs it requires
    assert json.loads(html.unescape(kinds)) == {
        JobKind.TEXT2IMAGE.value: [],
        JobKind.IMAGE2IMAGE.value: ["init_image"],
        JobKind.INPAINTING.value: ["init_image", "mask_image"],
        # (lists: the page asks for them in the raw JSON)
        JobKind.CONTROLNET.value: ["controlnets", "init_images"],
    }
