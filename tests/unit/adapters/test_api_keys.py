"""The keyed API's authorizer, its real entry point against an in-process moto table made from
template.yaml's ApiKeysTable (no sockets): good, wrong, revoked and malformed keys, the IAM-only
mode, and keys never logged. And the store an operator manages keys with: an owner's keys listed
(fingerprints, never keys), revoked by fingerprint alone or all at once by owner."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from imagegateway.adapters import api_key_store
from imagegateway.adapters.api_key_store import (
    AmbiguousFingerprint,
    ApiKeyStore,
    fingerprint,
    key_hash,
    well_formed,
)
from local.aws.lambda_runtime import LambdaContext, load_handler
from local.aws.resources import create_table
from local.aws.template import load_template, resources_of_type
from tests.support.caches import clear_all

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LATER = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
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
        # The table as the template declares it (keys and indexes), not a copy of it here.
        table = resources_of_type(load_template(), "AWS::DynamoDB::Table")["ApiKeysTable"]
        create_table(boto3.client("dynamodb"), TABLE, table["Properties"])
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
    (item,) = [
        row
        for row in boto3.resource("dynamodb").Table(TABLE).scan()["Items"]
        if not str(row["key_hash"]).startswith("fingerprint:")  # the fingerprint's index entry
    ]
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


# --- an operator's view: list by owner, revoke by fingerprint or by owner ----------------------


def test_an_owners_keys_are_listed_by_fingerprint_never_by_key(keys: ApiKeyStore) -> None:
    # Given two keys of team-a (one revoked) and one of team-b
    first, second = keys.issue("team-a", now=NOW), keys.issue("team-a", now=LATER)
    keys.issue("team-b", now=NOW)
    keys.revoke(first, now=LATER)
    # When team-a's keys are listed
    listed = keys.keys_of("team-a")
    # Then both are there, oldest first, by fingerprint and issue time, and neither key is
    assert [(k.fingerprint, k.issued_at, k.revoked_at) for k in listed] == [
        (fingerprint(first), NOW.isoformat(), LATER.isoformat()),
        (fingerprint(second), LATER.isoformat(), None),
    ]
    assert first not in repr(listed)
    assert second not in repr(listed)
    assert keys.keys_of("nobody") == []


def test_a_key_is_revoked_by_its_fingerprint_alone(keys: ApiKeyStore) -> None:
    # Given two keys of team-a, and an operator who kept only one's fingerprint
    lost, kept = keys.issue("team-a", now=NOW), keys.issue("team-a", now=NOW)
    # When that fingerprint is revoked
    revoked = keys.revoke_fingerprint(fingerprint(lost), now=LATER)
    # Then that key is refused, and the other still authorizes its owner
    assert revoked is not None
    assert (revoked.fingerprint, revoked.owner) == (fingerprint(lost), "team-a")
    assert authorize(lost) == {"isAuthorized": False}
    assert authorize(kept)["isAuthorized"] is True
    # And an unknown fingerprint revokes nothing
    assert keys.revoke_fingerprint("0badf00d", now=LATER) is None


def test_every_key_of_an_owner_is_revoked_by_owner(keys: ApiKeyStore) -> None:
    # Given two keys of team-a and one of team-b
    team_a = [keys.issue("team-a", now=NOW), keys.issue("team-a", now=NOW)]
    team_b = keys.issue("team-b", now=NOW)
    # When team-a is revoked by owner
    revoked = keys.revoke_owner("team-a", now=LATER)
    # Then both its keys are refused, team-b's still works, and a second run revokes nothing
    assert sorted(k.fingerprint for k in revoked) == sorted(map(fingerprint, team_a))
    assert all(authorize(key) == {"isAuthorized": False} for key in team_a)
    assert authorize(team_b)["isAuthorized"] is True
    assert keys.revoke_owner("team-a", now=LATER) == []


def test_a_fingerprint_two_live_keys_share_is_revoked_only_with_its_owner(
    keys: ApiKeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two owners' keys whose hashes start alike (8 hex digits: it happens, at scale)
    real = api_key_store.key_hash
    monkeypatch.setattr(api_key_store, "key_hash", lambda key: "c0ffee00" + real(key)[8:])
    mine, theirs = keys.issue("team-a", now=NOW), keys.issue("team-b", now=NOW)
    # When the shared fingerprint is revoked without an owner
    # Then nothing is revoked and the operator is told whose keys it names
    with pytest.raises(AmbiguousFingerprint, match="team-a, team-b"):
        keys.revoke_fingerprint("c0ffee00", now=LATER)
    assert keys.owner_of(mine) == "apikey:team-a"
    # When the owner is named too / Then only that owner's key is revoked
    revoked = keys.revoke_fingerprint("c0ffee00", owner="team-a", now=LATER)
    assert revoked is not None
    assert revoked.owner == "team-a"
    assert keys.owner_of(mine) is None
    assert keys.owner_of(theirs) == "apikey:team-b"


@pytest.mark.parametrize("text", ["", "c0ffee", "c0ffee0g", "C0FFEE00X", "fingerprint:x"])
def test_a_malformed_fingerprint_is_refused(keys: ApiKeyStore, text: str) -> None:
    with pytest.raises(ValueError, match="fingerprint"):
        keys.revoke_fingerprint(text, now=NOW)
