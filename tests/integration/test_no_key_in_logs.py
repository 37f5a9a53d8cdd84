"""The upstream API key is in no log record at any level, even with `LogLevel=DEBUG`.

In Lambda, `LoggingConfig.ApplicationLogLevel` makes the Python runtime set the ROOT logger to
that level, with its own handler on root: at DEBUG every library's debug records reach
CloudWatch unless the gateway holds them back. botocore's DEBUG records include the raw
`GetSecretValue` response body (the key in `SecretString`); urllib3's include request lines.
This test sets logging up the same way and searches every formatted record for the key.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator

import boto3
import pytest
import requests

from imagegateway.adapters.upstream_client import UpstreamClient, upstream_api_key
from imagegateway.domain.base import JobKind
from imagegateway.platform.observability import guard_handlers, logger, quiet_libraries
from imagegateway.platform.settings import get_settings
from local.aws.resources import LocalStack
from local.fake_upstream import FakeUpstream


class Capture(logging.Handler):
    """Formats and keeps every record it is handed, whatever its level or logger."""

    def __init__(self) -> None:
        super().__init__(level=logging.NOTSET)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.lines: list[str] = []
        self.loggers: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))
        self.loggers.add(record.name)


@pytest.fixture
def lambda_debug_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[Capture]:
    """Logging as the Lambda runtime sets it up with ApplicationLogLevel=DEBUG: the root logger
    at DEBUG with a handler on root, and Powertools at DEBUG (our own logger, created at
    import, gets the handler and the level too, as in Lambda where it is created after the
    runtime configured logging)."""
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("AWS_LAMBDA_LOG_LEVEL", "DEBUG")
    root = logging.getLogger()
    capture = Capture()
    previous_root_level, previous_logger_level = root.level, logger.log_level
    root.setLevel(logging.DEBUG)
    root.addHandler(capture)
    logger.setLevel(logging.DEBUG)
    yield capture
    root.removeHandler(capture)
    root.setLevel(previous_root_level)
    logger.setLevel(previous_logger_level)


def test_the_key_is_in_no_record_at_debug(
    stack: LocalStack, upstream: FakeUpstream, lambda_debug_logging: Capture
) -> None:
    # Given a random key in Secrets Manager, known to the fake upstream
    key = f"sk-{secrets.token_hex(16)}"
    boto3.client("secretsmanager", region_name="us-east-1").put_secret_value(
        SecretId=stack.secret_arn, SecretString=key
    )
    upstream.api_key = key
    job = requests.post(
        f"{upstream.base_url}/sd/text2image/v1",
        json={"model_id": "sd1.5", "prompt": "a fox"},
        headers={"API-Key": key},
        timeout=10,
    ).json()["id"]
    lambda_debug_logging.lines.clear()  # only what the gateway itself logs from here
    # When the gateway reads the key through Secrets Manager (a real GetSecretValue in moto)
    # and checks the job's status upstream with it (requests and urllib3 at work)
    assert upstream_api_key(get_settings()) == key
    answer = UpstreamClient(get_settings()).status(JobKind.TEXT2IMAGE, str(job))
    assert answer.status.value in ("PENDING", "SUCCESS")
    # Then no record, at any level from any logger, holds the key
    leaked = [line for line in lambda_debug_logging.lines if key in line]
    assert leaked == [], leaked
    # While DEBUG records did reach the capture (the test would prove nothing otherwise)
    assert any(line.startswith("DEBUG ") for line in lambda_debug_logging.lines)


def test_libraries_stay_quiet_whatever_the_root_level(request: pytest.FixtureRequest) -> None:
    # Given the root at DEBUG and a library child logger someone set to DEBUG explicitly
    root, parsers = logging.getLogger(), logging.getLogger("botocore.parsers")
    before = (root.level, parsers.level)
    request.addfinalizer(lambda: (root.setLevel(before[0]), parsers.setLevel(before[1])))
    root.setLevel(logging.DEBUG)
    parsers.setLevel(logging.DEBUG)
    # When the libraries are quieted (as observability does at import)
    quiet_libraries()
    # Then none of them writes DEBUG or INFO records, while warnings still go through
    for name in ("botocore", "botocore.parsers", "boto3", "urllib3.connectionpool", "s3transfer"):
        assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
        assert logging.getLogger(name).isEnabledFor(logging.WARNING), name


def test_a_wire_dump_reaching_a_guarded_handler_is_redacted() -> None:
    # Given a handler guarded like the runtime's root handler (at import)
    capture = Capture()
    guard_handlers(capture)
    wire = logging.getLogger("tests.wire")
    wire.addHandler(capture)
    wire.propagate = False
    try:
        # When a library writes a secret's response body and a request's headers anyway
        body = b'{"ARN": "arn", "SecretString": "sk-123", "VersionStages": ["AWSCURRENT"]}'
        wire.warning("Response body:\n%r", body)
        wire.warning("headers: %s", {"API-Key": "sk-456", "Accept": "application/json"})
        wire.warning("the upstream refused the gateway's API key (HTTP 401)")
    finally:
        wire.removeHandler(capture)
    # Then the values are gone, and everything else is kept
    text = "\n".join(capture.lines)
    assert "sk-123" not in text
    assert "sk-456" not in text
    assert '"SecretString": "***"' in text
    assert "'API-Key': '***', 'Accept': 'application/json'" in text
    assert "refused the gateway's API key (HTTP 401)" in text
