"""Image URLs in a request that the upstream fetches itself (`init_image`, `mask_image`,
ControlNet's `init_images`, the IP-Adapter pictures) and a body `webhook`: checked for shape
before a paid call is spent on a URL nobody can fetch."""

from __future__ import annotations

import os
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

MAX_IMAGE_URL_CHARS = 2048
# Locally the fake upstream serves http on 127.0.0.1; this is the store step's own switch.
INSECURE_URLS_VARIABLE = "ALLOW_INSECURE_DOWNLOADS"


def _insecure_urls_allowed() -> bool:
    return os.environ.get(INSECURE_URLS_VARIABLE, "").strip().lower() == "true"


def _checked_image_url(value: str) -> str:
    """An image URL the upstream fetches itself: checked for shape before a paid call."""
    if len(value) > MAX_IMAGE_URL_CHARS:
        raise PydanticCustomError(
            "url_too_long", "must be at most {limit} characters", {"limit": MAX_IMAGE_URL_CHARS}
        )
    if any(char.isspace() or ord(char) < 32 or char == "\\" for char in value):
        raise PydanticCustomError("url_characters", "must not contain spaces or backslashes")
    parts = urlsplit(value)
    schemes = ("https", "http") if _insecure_urls_allowed() else ("https",)
    if parts.scheme.lower() not in schemes or not parts.netloc:
        raise PydanticCustomError("url_scheme", "must be an absolute https URL")
    if "@" in parts.netloc or parts.username or parts.password:
        raise PydanticCustomError("url_credentials", "must not contain credentials")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if not parts.hostname or port == -1:
        raise PydanticCustomError("url_host", "must name a host")
    return value


ImageUrl = Annotated[str, AfterValidator(_checked_image_url)]
