"""The one place Logger, Tracer and Metrics are made; every module imports them from here.

It is also where other libraries' logging is held back. With `LogLevel=DEBUG` the Lambda
runtime sets the ROOT logger to DEBUG (advanced logging controls), so every library's debug
records would reach CloudWatch: botocore's include each raw response body (the upstream API key
in `GetSecretValue`'s `SecretString`), urllib3's the request lines, the X-Ray SDK's whole trace
segments. The upstream key must be in no log line at any level, so those libraries are pinned
to WARNING (or the root's level, if higher) whatever the root level is; our own logger still
follows `LogLevel`. A redaction filter on the handlers present at import is a second guard.
"""

from __future__ import annotations

import logging
import re

from aws_lambda_powertools import Logger, Metrics, Tracer

# Libraries whose DEBUG/INFO records carry wire data (bodies, headers, URLs, trace segments).
QUIET_LIBRARIES = ("botocore", "boto3", "s3transfer", "urllib3", "requests", "aws_xray_sdk")

# Secret values as they appear in wire dumps, each with what replaces it: a `SecretString` or
# `SecretBinary` JSON field (its value runs to the quote that ends the field, so a JSON secret
# nested in it goes too), and an API key header or field, in a dict repr or on the wire.
_REDACTIONS = (
    (
        re.compile(r'("Secret(?:String|Binary)"\s*:\s*)".*?"(?=\s*(?:,\s*"\w+"\s*:|\}|$))'),
        r'\1"***"',
    ),
    (re.compile(r"""(api[-_]?key['"]?\s*[:=]\s*b?['"]?)[^'"\s,;}\\]+""", re.IGNORECASE), r"\1***"),
)


def redact_secrets(text: str) -> str:
    """`text` with the values of secret fields and API key headers replaced by `***`."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecretsFilter(logging.Filter):
    """Rewrites a record whose formatted message holds a secret field or a key header."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot be formatted: leave it to the handler
            return True
        redacted = redact_secrets(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def quiet_libraries() -> None:
    """Pin the wire-logging libraries to WARNING (or the root's level, if higher), and let their
    children inherit that, whatever level the root logger has now or is given later."""
    floor = max(logging.WARNING, logging.getLogger().getEffectiveLevel())
    for name in QUIET_LIBRARIES:
        library = logging.getLogger(name)
        if library.level < floor:
            library.setLevel(floor)
    prefixes = tuple(f"{name}." for name in QUIET_LIBRARIES)
    for name, child in list(logging.Logger.manager.loggerDict.items()):
        if (
            name.startswith(prefixes)
            and isinstance(child, logging.Logger)
            and logging.NOTSET < child.level < floor
        ):
            child.setLevel(logging.NOTSET)


def guard_handlers(*handlers: logging.Handler) -> None:
    """Add the redaction filter (once) to these handlers and to the root logger's."""
    for handler in (*handlers, *logging.getLogger().handlers):
        if not any(isinstance(existing, RedactSecretsFilter) for existing in handler.filters):
            handler.addFilter(RedactSecretsFilter())


logger = Logger()
tracer = Tracer()
metrics = Metrics()

quiet_libraries()
guard_handlers(logger.registered_handler)
