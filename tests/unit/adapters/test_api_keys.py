"""The keyed API's authorizer, its real entry point against an in-process moto table (no
sockets): good, wrong, revoked and malformed keys, the IAM-only mode, and keys never logged."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from imagegateway.adapters.api_key_store import ApiKeyStore, fingerprint, key_hash, well_formed
from local.aws.lambda_runtime import LambdaContext, load_handler
from tests.support.caches import clear_all

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TABLE = "api-keys"


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[ApiKeyStore]:
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "JOBS_TABLE_NAME": "jobs",
        "IMAGES_BUCKET_NAME": "images",
        "API_KEYS_TABLE_NAME": TABLE,
        "AUTH_MODE": "API_KEY",
        "POWERTOOLS_LOG_LEVEL": "DEBUG",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        clear_all()
        boto3.client("dynamodb").create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "key_hash", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "key_hash", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield ApiKeyStore(TABLE)
        clear_all()


def authorize(key: str | None) -> Any:
    handler = load_handler(REPO / "functions" / "authorizer")
    headers = {"API-Key": key} if key is not None else {}
    event = {"version": "2.0", "type": "REQUEST", "headers": headers}
    return handler(event, LambdaContext(function_name="authorizer"))


def test_a_live_key_authorizes_its_owner(keys: ApiKeyStore) -> None:
    key = keys.issue("team-a", now=NOW)
    assert authorize(key) == {"isAuthorized": True, "context": {"owner": "apikey:team-a"}}


@pytest.mark.parametrize(
    "key", [None, "", "igw_" + "x" * 43, "not-a-key", "igw_short", "igw_" + "é" * 43]
)
def test_a_missing_unknown_or_malformed_key_is_refused(keys: ApiKeyStore, key: str | None) -> None:
    keys.issue("team-a", now=NOW)
    assert authorize(key) == {"isAuthorized": False}


def test_a_revoked_key_is_refused(keys: ApiKeyStore) -> None:
    key = keys.issue("team-a", now=NOW)
    assert keys.revoke(key, now=NOW)
    assert authorize(key) == {"isAuthorized": False}
    assert not keys.revoke("igw_" + "y" * 43, now=NOW)  # no such key


def test_iam_mode_refuses_every_key(keys: ApiKeyStore, monkeypatch: pytest.MonkeyPatch) -> None:
    key = keys.issue("team-a", now=NOW)
    monkeypatch.setenv("AUTH_MODE", "IAM")
    clear_all()
    assert authorize(key) == {"isAuthorized": False}


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.NOTSET)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.getMessage()} {record.__dict__}")


def test_only_hashes_are_stored_and_keys_never_logged(keys: ApiKeyStore) -> None:
    # Given a key, used once rightly and once wrongly, with every log record at DEBUG kept
    from imagegateway.platform.observability import logger

    root, capture = logging.getLogger(), Capture()
    levels = root.level, logger.log_level
    root.setLevel(logging.DEBUG)
    root.addHandler(capture)
    logger.setLevel(logging.DEBUG)
    key = keys.issue("team-a", now=NOW)
    wrong = key[:-1] + ("A" if key[-1] != "A" else "B")
    try:
        authorize(key)
        authorize(wrong)
    finally:
        root.removeHandler(capture)
        root.setLevel(levels[0])
        logger.setLevel(levels[1])
    # Then the table holds the hash, not the key; and no log record holds either key, while
    # the refusal is logged with the wrong key's fingerprint
    (item,) = boto3.resource("dynamodb").Table(TABLE).scan()["Items"]
    assert item["key_hash"] == key_hash(key)
    assert key not in str(item)
    logged = "\n".join(capture.lines)
    assert key not in logged
    assert wrong not in logged
    assert fingerprint(wrong) in logged


def test_keys_are_random_and_well_formed(keys: ApiKeyStore) -> None:
    issued = {keys.issue("team-a", now=NOW) for _ in range(5)}
    assert len(issued) == 5
    assert all(well_formed(key) for key in issued)
    with pytest.raises(ValueError, match="name"):
        keys.issue("team a; drop", now=NOW)
