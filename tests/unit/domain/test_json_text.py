"""The gateway's JSON reader: what it refuses, and how it names where. No AWS, no sockets."""

from __future__ import annotations

import pytest

from imagegateway.domain.errors import UnreadableInputError
from imagegateway.domain.json_text import MAX_DEPTH, read_json


@pytest.mark.parametrize(
    ("text", "field", "says"),
    [
        ('{"seed": ' + "9" * 400 + "}", "seed", "larger than any field can hold"),
        ('{"seed": ' + "9" * 5000 + "}", "seed", "(5000 characters)"),
        ('{"a": {"b": [1, -1e400]}}', "a.b[1]", "-1e400 is larger than any field can hold"),
        ('{"strength": NaN}', "strength", "NaN is not a JSON value"),
        ('{"x": [-Infinity]}', "x[0]", "-Infinity is not a JSON value"),
        ('{"prompt": "a", "prompt": "b"}', "prompt", "appears more than once"),
        ('{"prompt": "\\ud800"}', "prompt", "not Unicode text"),
        ('{"\\udfff": 1}', "body", "a key is not Unicode text"),
        ('{"e": ' + "[" * 40 + "]" * 40 + "}", "e", f"nested deeper than {MAX_DEPTH}"),
        ("[" * 50_000 + "]" * 50_000, "body", f"nested deeper than {MAX_DEPTH}"),
        ("{not json", "body", "not valid JSON"),
        (b"\xff\xfe", "body", "not valid JSON"),
    ],
)
def test_unreadable_json_is_refused_naming_where(text: str | bytes, field: str, says: str) -> None:
    # Given JSON text json.loads alone would choke on or misread
    # When it is read
    with pytest.raises(UnreadableInputError) as refused:
        read_json(text)
    # Then the refusal names the field and says why, on one line
    [(named, message)] = refused.value.details
    assert named == field
    assert says in message or says in refused.value.message
    assert "\n" not in refused.value.message


@pytest.mark.parametrize(
    "text",
    [
        '{"prompt": "a \\ud83e\\udd8a", "seed": 4294967295, "guidance_scale": 1e308}',
        '{"e": ' + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "}",
        '{"w": -0.0, "n": null, "t": true, "s": "caf\u00e9"}',
        "[]",
        '"text"',
    ],
)
def test_ordinary_json_is_read_as_json_loads_reads_it(text: str) -> None:
    import json

    assert read_json(text) == json.loads(text)
