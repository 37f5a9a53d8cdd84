"""`imagegateway-keys`, the operator's command, against an in-process moto table made from
template.yaml's ApiKeysTable (no sockets): an operator who kept no key can still list an owner's
keys (fingerprints, never keys) and revoke one by its fingerprint, or all of an owner's; revoking
by the key itself keeps working."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from imagegateway.adapters.api_key_store import ApiKeyStore
from imagegateway.entrypoints.key_admin import main
from local.aws.resources import create_table
from local.aws.template import load_template, resources_of_type
from tests.support.caches import clear_all

TABLE = "api-keys"


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        clear_all()
        spec = resources_of_type(load_template(), "AWS::DynamoDB::Table")["ApiKeysTable"]
        create_table(boto3.client("dynamodb"), TABLE, spec["Properties"])
        yield TABLE
        clear_all()


def keys(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The command's exit code, stdout and stderr, run against the test table."""
    capsys.readouterr()
    code = main([*args, "--table", TABLE])
    out, err = capsys.readouterr()
    return code, out, err


def issue(capsys: pytest.CaptureFixture[str], owner: str) -> tuple[str, str]:
    """A new key of owner and the fingerprint the command printed for it."""
    code, out, err = keys(capsys, "issue", owner)
    assert code == 0, err
    printed = err.split("(fingerprint ", 1)[1].split(")", 1)[0]
    return out.strip(), printed


def live(key: str) -> bool:
    return ApiKeyStore(TABLE).owner_of(key) is not None


def test_list_shows_an_owners_fingerprints_and_never_a_key(
    table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given two keys issued for team-a, one for team-b
    (key_1, fp_1), (key_2, fp_2) = issue(capsys, "team-a"), issue(capsys, "team-a")
    issue(capsys, "team-b")
    # When team-a's keys are listed
    code, out, err = keys(capsys, "list", "team-a")
    # Then there is one line per key, with the fingerprint printed at issue, and no key
    assert code == 0, err
    lines = out.splitlines()
    assert sorted(line.split()[0] for line in lines) == sorted([fp_1, fp_2])
    assert all(line.split()[-1] == "live" for line in lines)
    assert key_1 not in out + err
    assert key_2 not in out + err


def test_an_operator_with_only_the_fingerprint_revokes_that_key(
    table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given two keys of team-a, and an operator who kept only the first one's fingerprint
    (lost, printed), (kept, _) = issue(capsys, "team-a"), issue(capsys, "team-a")
    # When it revokes by that fingerprint
    code, _, err = keys(capsys, "revoke", "--fingerprint", printed)
    # Then that key is dead, the other lives, and the listing says which is which
    assert code == 0, err
    assert (live(lost), live(kept)) == (False, True)
    _, out, _ = keys(capsys, "list", "team-a")
    status = {line.split()[0]: line.split()[2] for line in out.splitlines()}
    assert status[printed] == "revoked"
    # And an unknown fingerprint is an error, not a silent success
    assert keys(capsys, "revoke", "--fingerprint", "0badf00d")[0] == 1


def test_an_operator_with_only_the_owner_revokes_all_its_keys(
    table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given two keys of team-a and one of team-b
    (key_1, _), (key_2, _) = issue(capsys, "team-a"), issue(capsys, "team-a")
    other, _ = issue(capsys, "team-b")
    # When team-a is revoked by owner
    code, _, err = keys(capsys, "revoke", "--owner", "team-a")
    # Then none of team-a's keys works, team-b's does, and it says how many it revoked
    assert code == 0, err
    assert "2 keys" in err
    assert (live(key_1), live(key_2), live(other)) == (False, False, True)
    # And a second run finds nothing left to revoke
    assert keys(capsys, "revoke", "--owner", "team-a")[0] == 1


def test_revoking_by_the_key_itself_still_works(
    table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    key, printed = issue(capsys, "team-a")
    code, out, err = keys(capsys, "revoke", key)
    assert code == 0, err
    assert printed in err
    assert key not in out + err
    assert not live(key)


@pytest.mark.parametrize(
    "args",
    [
        ["revoke"],
        ["list"],
        ["revoke", "igw_x", "--owner", "team-a"],
        ["revoke", "--fingerprint", "nothex!!"],
        ["issue", "team-a", "--fingerprint", "c0ffee00"],
    ],
)
def test_a_revoke_that_names_nothing_or_too_much_is_a_usage_error(
    table: str, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        keys(capsys, *args)
    assert exit_.value.code == 2
