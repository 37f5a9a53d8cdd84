"""The published JSON Schemas of the event contract (docs/events/), for tests to hold every
emitted event and every accepted envelope to them."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "events"
COMPLETED = "image-generation-completed"
REQUESTED = "image-generation-requested"


@cache
def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def schema_errors(name: str, document: Any) -> list[str]:
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in validator(name).iter_errors(document)
    ]


def assert_valid_completion(event: dict[str, Any]) -> None:
    """A completion event as the bus delivers it: source, detail-type and its detail."""
    assert event["source"] == "imagepipeline-gateway"
    status = event["detail"]["status"]
    expected = "Image Generation Succeeded" if status == "SUCCESS" else "Image Generation Failed"
    assert event["detail-type"] == expected
    assert schema_errors(COMPLETED, event["detail"]) == []
