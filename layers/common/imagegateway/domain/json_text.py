"""The JSON the gateway reads, from any caller: HTTP bodies, queue messages, bus events and list
cursors. Python's `json.loads` alone accepts text that later breaks something else, far from the
parse, as a 5xx or a message retried until its dead-letter queue:

- nesting a few thousand deep (a RecursionError, in the parser or in anything that walks it);
- integers of hundreds of digits (an OverflowError once a float is made of them) or thousands
  (a ValueError past Python's int-from-text limit); floats past the double range (1e400 is
  read as inf); the NaN and Infinity literals, which are not JSON at all;
- lone UTF-16 surrogates (`"\\ud800"`), valid escapes of no Unicode character, which no
  UTF-8 encoder (boto3, DynamoDB, the upstream) takes;
- a key said twice, which parsers resolve differently (the first, the last, an error).

`read_json` refuses all of these with a `UnreadableInputError` naming where, with the parser's
own hooks: the number, constant and object hooks leave a placeholder where something is wrong
instead of raising (they do not know where they are), and one walk after the parse finds the
first placeholder, a string that is not Unicode, or nesting past MAX_DEPTH, with its path.
Nesting the C parser itself cannot take is its RecursionError, caught: it is raised cleanly
(Py_EnterRecursiveCall) long before the interpreter's own stack is at risk, and costs nothing
on a body that is not hostile, unlike scanning every body's brackets in Python first.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from imagegateway.domain.errors import UnreadableInputError

# No request the gateway takes nests deeper than 4 (a bus event's envelope's request's list of
# strings); 32 leaves room to spare while bounding every later walk of the value.
MAX_DEPTH = 32
# An integer with more digits than this is past the double range whatever its digits (a double
# holds up to ~1.8e308); checked on the text, before int() spends time on it.
MAX_INTEGER_DIGITS = 309
# Any integer a field could hold converts to a float: past this, pydantic or format() fails.
_LARGEST_DOUBLE = int(sys.float_info.max)


class _Unreadable:
    """A value the hooks refused, kept in place so the walk can say where it was."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _integer(text: str) -> Any:
    digits = text.lstrip("-")
    if len(digits) <= MAX_INTEGER_DIGITS:
        number = int(text)
        if abs(number) <= _LARGEST_DOUBLE:
            return number
    return _Unreadable(f"the number {_shown(text)} is larger than any field can hold")


def _float(text: str) -> Any:
    number = float(text)
    if math.isfinite(number):
        return number
    return _Unreadable(f"the number {_shown(text)} is larger than any field can hold")


def _constant(text: str) -> Any:
    return _Unreadable(f"{text} is not a JSON value")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                found[key] = _Unreadable("the key appears more than once")
                break
            seen.add(key)
    return found


def _shown(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:12]}...({len(text)} characters)"


def _unicode(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def path_name(prefix: str, part: str | int) -> str:
    """`request.lora_weights[0]`, as the contract's details name fields."""
    if isinstance(part, int):
        return f"{prefix}[{part}]"
    return f"{prefix}.{part}" if prefix else part


def _first_problem(value: Any) -> tuple[str, str] | None:
    """(field, message) of the first thing wrong in a parsed value (an explicit stack, so no
    recursion whatever the value)."""
    pending: list[tuple[Any, str, int]] = [(value, "", 0)]
    while pending:
        item, path, depth = pending.pop()
        if depth > MAX_DEPTH:
            # Named by its top-level field: a path 32 levels long helps no one.
            top = path.split("[", 1)[0].split(".", 1)[0]
            return top or "body", f"nested deeper than {MAX_DEPTH} levels"
        if isinstance(item, _Unreadable):
            return path or "body", item.reason
        if isinstance(item, str):
            if not _unicode(item):
                return path or "body", "is not Unicode text (a lone UTF-16 surrogate escape)"
        elif isinstance(item, dict):
            for key, child in item.items():
                if not _unicode(key):
                    return path or "body", "a key is not Unicode text (a lone surrogate escape)"
                pending.append((child, path_name(path, key), depth + 1))
        elif isinstance(item, list):
            pending.extend((child, path_name(path, i), depth + 1) for i, child in enumerate(item))
    return None


def read_json(text: str | bytes, *, what: str = "the body") -> Any:
    """The JSON value of `text`, or UnreadableInputError naming what is wrong and where."""
    try:
        value = json.loads(
            text,
            parse_int=_integer,
            parse_float=_float,
            parse_constant=_constant,
            object_pairs_hook=_object,
        )
    except RecursionError:
        raise UnreadableInputError(
            f"{what} is nested deeper than {MAX_DEPTH} levels",
            details=[("body", f"nested deeper than {MAX_DEPTH} levels")],
        ) from None
    except ValueError as exc:  # JSONDecodeError, and bytes that are not UTF-8
        raise UnreadableInputError(
            f"{what} is not valid JSON ({one_line(exc)})", details=[("body", "not valid JSON")]
        ) from None
    problem = _first_problem(value)
    if problem is not None:
        field, message = problem
        # One line whatever the field's name (a key may hold any character).
        shown = one_line(field, 80)
        raise UnreadableInputError(
            f"{what} is not valid JSON: {shown}: {message}", details=[problem]
        )
    return value


def one_line(text: object, limit: int = 200) -> str:
    """`text` on one line (every run of whitespace one space), at most `limit` characters: an
    error's summary names fields, and a key may hold any character."""
    return " ".join(str(text).split())[:limit]
