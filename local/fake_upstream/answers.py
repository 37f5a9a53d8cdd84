"""The fake upstream's answers: a canned HTTP answer (`Answer`), and the scripts of
`POST /__fake__/script`, validated (`Script`, one `Scripted` answer each).
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

# A guard against a script in milliseconds by mistake; still longer than any client timeout.
MAX_DELAY_SECONDS = 600.0

JsonDict = dict[str, Any]
RequestKind = Literal["submit", "status", "images"]
REQUEST_KINDS: tuple[RequestKind, ...] = ("submit", "status", "images")


@dataclass
class Answer:
    code: int
    body: bytes
    # None: no default Content-Type (a scripted answer without a body, or one that sets it).
    content_type: str | None = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0


def json_answer(code: int, payload: Any, headers: dict[str, str] | None = None) -> Answer:
    return Answer(code, json.dumps(payload).encode("utf-8"), headers=headers or {})


def failure(code: int, error: str) -> Answer:
    return json_answer(code, {"status": "FAILURE", "error": error})


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _substitute(value: Any, replacements: Mapping[str, str]) -> Any:
    """``value`` with every placeholder replaced inside every string, keys included."""
    if isinstance(value, str):
        for placeholder, text in replacements.items():
            value = value.replace(placeholder, text)
        return value
    if isinstance(value, list):
        return [_substitute(item, replacements) for item in value]
    if isinstance(value, dict):
        return {
            _substitute(key, replacements): _substitute(item, replacements)
            for key, item in value.items()
        }
    return value


_ANSWER_KEYS = frozenset({"code", "headers", "json", "body", "delay_seconds", "accept"})
_SCRIPT_KEYS = frozenset({"model_id", "completes_after_seconds", *REQUEST_KINDS})
# The fake frames the body itself; a scripted framing header would corrupt the response.
_FORBIDDEN_HEADERS = frozenset({"content-length", "transfer-encoding"})


@dataclass(frozen=True)
class Scripted:
    """One validated ANSWER of a script."""

    code: int
    headers: dict[str, str]
    has_json: bool  # "json": null is a JSON body too, so presence is tracked apart
    json_value: Any
    body: bytes | None
    delay_seconds: float
    accept: bool

    @classmethod
    def parse(cls, raw: object, where: str) -> Scripted:
        if not isinstance(raw, dict):
            raise ValueError(f"{where} must be an object")
        unknown = sorted(str(key) for key in set(raw) - _ANSWER_KEYS)
        if unknown:
            raise ValueError(f"{where} has unknown keys {unknown}")
        code = raw.get("code", 200)
        if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
            raise ValueError(f"{where}.code must be an integer in [100, 599]")
        headers = raw.get("headers", {})
        if not isinstance(headers, dict):
            raise ValueError(f"{where}.headers must be an object")
        clean: dict[str, str] = {}
        for name, value in headers.items():
            if not isinstance(name, str):
                raise ValueError(f"{where}.headers names must be strings")
            # Numbers are allowed for convenience ("Retry-After": 1).
            if not isinstance(value, str) and not is_number(value):
                raise ValueError(f"{where}.headers.{name} must be a string or a number")
            text = str(value)
            if not name or any(c in name + text for c in "\r\n") or ":" in name:
                raise ValueError(f"{where}.headers.{name!r} is not a valid header")
            if name.lower() in _FORBIDDEN_HEADERS:
                raise ValueError(f"{where}.headers.{name} is set by the fake itself")
            clean[name] = text
        if "json" in raw and "body" in raw:
            raise ValueError(f"{where} has both json and body")
        body = raw.get("body")
        if body is not None and not isinstance(body, str):
            raise ValueError(f"{where}.body must be a string")
        delay = raw.get("delay_seconds", 0)
        if not is_number(delay) or not 0 <= delay <= MAX_DELAY_SECONDS:
            raise ValueError(f"{where}.delay_seconds must be a number in [0, {MAX_DELAY_SECONDS}]")
        accept = raw.get("accept", False)
        if not isinstance(accept, bool):
            raise ValueError(f"{where}.accept must be a boolean")
        return cls(
            code=code,
            headers=clean,
            has_json="json" in raw,
            json_value=raw.get("json"),
            body=None if body is None else body.encode("utf-8"),
            delay_seconds=float(delay),
            accept=accept,
        )

    def render(self, job_id: str, base_url: str) -> Answer:
        # A scripted Content-Type header wins over the default one.
        typed = any(name.lower() == "content-type" for name in self.headers)
        if self.has_json:
            value = _substitute(self.json_value, {"{{id}}": job_id, "{{base_url}}": base_url})
            body, content_type = json.dumps(value).encode("utf-8"), "application/json"
        elif self.body is not None:
            body, content_type = self.body, "text/plain; charset=utf-8"
        else:
            body, content_type = b"", ""
        return Answer(
            self.code,
            body,
            content_type=None if typed or not content_type else content_type,
            headers=dict(self.headers),
            delay_seconds=self.delay_seconds,
        )


@dataclass
class Script:
    """The staged behaviour of one model id; the answer lists are consumed from the left."""

    answers: dict[RequestKind, deque[Scripted]]
    completes_after_seconds: float | None

    @classmethod
    def parse(cls, raw: object) -> tuple[str, Script]:
        if not isinstance(raw, dict):
            raise ValueError("the script must be a JSON object")
        unknown = sorted(str(key) for key in set(raw) - _SCRIPT_KEYS)
        if unknown:
            raise ValueError(f"unknown script keys {unknown}")
        model_id = raw.get("model_id")
        if not isinstance(model_id, str) or not model_id:
            raise ValueError("model_id must be a non-empty string")
        answers: dict[RequestKind, deque[Scripted]] = {}
        for kind in REQUEST_KINDS:
            items = raw.get(kind, [])
            if not isinstance(items, list):
                raise ValueError(f"{kind} must be a list of answers")
            answers[kind] = deque(
                Scripted.parse(item, f"{kind}[{i}]") for i, item in enumerate(items)
            )
        after = raw.get("completes_after_seconds")
        if after is not None and (not is_number(after) or after < 0):
            raise ValueError("completes_after_seconds must be a number >= 0")
        return model_id, cls(answers, None if after is None else float(after))
