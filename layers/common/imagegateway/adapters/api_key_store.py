"""API keys, for callers of the upstream's own kind: `API-Key: <key>`, as the upstream takes it.

A key is shown once, when it is issued; the table keeps only its SHA-256 (a key is 32 random
bytes, so a fast hash is enough: there is nothing to guess), the name of its owner, and when it
was issued or revoked. The HTTP API's Lambda authorizer (`authorize`) turns a key into its
owner, `apikey:<name>`, which is then the caller's identity for its jobs. Keys never appear in
logs: only the first characters of their hash (`fingerprint`).

An operator who kept no key manages them by owner and fingerprint (`keys_of`, `revoke_owner`,
`revoke_fingerprint`). Listing by owner queries the table's ByOwner index (name, key_hash): a
Scan would read every key of every owner. A fingerprint is a hash prefix, which no key schema can
look up, so issuing a key also adds its hash to an index item of the table itself, keyed
`fingerprint:<fingerprint>` (one more GSI would do, but CloudFormation adds only one GSI to a
table per update, and the listing needed it). The index item holds hashes only, never a name,
so it is neither in ByOwner nor ever an owner: a key's hash is hex, never `fingerprint:...`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from imagegateway.adapters.aws_clients import dynamodb_table

KEY_PREFIX = "igw_"
# Owner names: what IAM allows in a user name (the local stack's caller names too).
NAME_PATTERN = re.compile(r"^[A-Za-z0-9+=,.@_-]{1,64}$")
OWNER_PREFIX = "apikey:"
_KEY_PATTERN = re.compile(r"^igw_[A-Za-z0-9_-]{43}$")
_FINGERPRINT_PATTERN = re.compile(r"^[0-9a-f]{8}$")
FINGERPRINT_LENGTH = 8
BY_OWNER_INDEX = "ByOwner"
_FINGERPRINT_ITEM = "fingerprint:"


class AmbiguousFingerprint(ValueError):
    """A fingerprint that names live keys of several owners: revoking one must name its owner."""

    def __init__(self, fingerprint: str, owners: list[str]) -> None:
        super().__init__(
            f"fingerprint {fingerprint} names live keys of {', '.join(owners)}: name the owner"
        )
        self.owners = owners


@dataclass(frozen=True)
class KeyRecord:
    """What the table knows of one key: never the key, which only its holder has."""

    fingerprint: str
    owner: str  # the name it was issued for (the caller is `apikey:<owner>`)
    issued_at: str
    revoked_at: str | None
    # The key's table key, to revoke it; not for printing (the fingerprint is what is shown).
    key_hash: str

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> KeyRecord:
        digest = str(item["key_hash"])
        revoked = item.get("revoked_at")
        return cls(
            fingerprint=digest[:FINGERPRINT_LENGTH],
            owner=str(item["name"]),
            issued_at=str(item["issued_at"]),
            revoked_at=str(revoked) if revoked else None,
            key_hash=digest,
        )


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    # surrogatepass: a header with a lone surrogate is still hashed (for its fingerprint in the
    # refusal's log line) rather than failing the authorizer, which API Gateway answers 500.
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def fingerprint(key: str) -> str:
    """What logs may say about a key: the first 8 hex digits of its hash."""
    return key_hash(key)[:FINGERPRINT_LENGTH]


def normal_fingerprint(text: str) -> str:
    """A fingerprint as typed (either case) in the form it is stored; ValueError if it is not
    8 hex digits."""
    value = text.strip().lower()
    if not _FINGERPRINT_PATTERN.fullmatch(value):
        raise ValueError(f"a fingerprint is {FINGERPRINT_LENGTH} hex digits, as issue prints it")
    return value


def well_formed(key: str | None) -> bool:
    return key is not None and _KEY_PATTERN.fullmatch(key) is not None


class ApiKeyStore:
    def __init__(self, table_name: str) -> None:
        self._table = dynamodb_table(table_name)

    def issue(self, name: str, *, now: datetime) -> str:
        """A new key for `name` (a caller may hold several); returned once, never stored."""
        if not NAME_PATTERN.fullmatch(name):
            raise ValueError("a key's name is 1 to 64 of A-Z a-z 0-9 + = , . @ _ -")
        key = new_key()
        digest = key_hash(key)
        # The fingerprint's index entry first: a key then never exists that its fingerprint does
        # not find. A put that fails after it leaves a hash with no key, which lookups skip.
        self._table.update_item(
            Key={"key_hash": _FINGERPRINT_ITEM + digest[:FINGERPRINT_LENGTH]},
            UpdateExpression="ADD key_hashes :digest",
            ExpressionAttributeValues={":digest": {digest}},
        )
        self._table.put_item(
            Item={"key_hash": digest, "name": name, "issued_at": now.isoformat()},
            ConditionExpression="attribute_not_exists(key_hash)",
        )
        return key

    def revoke(self, key: str, *, now: datetime) -> bool:
        """False if there is no such key."""
        try:
            self._table.update_item(
                Key={"key_hash": key_hash(key)},
                UpdateExpression="SET revoked_at = :now",
                ConditionExpression="attribute_exists(key_hash)",
                ExpressionAttributeValues={":now": now.isoformat()},
            )
        except self._table.meta.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def keys_of(self, owner: str, *, fingerprint: str = "") -> list[KeyRecord]:
        """Every key issued for `owner` (whose hash starts with `fingerprint`, if given), live
        or revoked, oldest first."""
        # Expression strings, not boto3's condition builders: the authorizer imports this
        # module, and its cold start imports no boto3 (tests/unit/entrypoints/test_cold_imports).
        # "name" is a DynamoDB reserved word, hence #name.
        condition = "#name = :owner"
        values = {":owner": owner}
        if fingerprint:
            condition += " AND begins_with(key_hash, :fingerprint)"
            values[":fingerprint"] = fingerprint
        items: list[dict[str, Any]] = []
        query: dict[str, Any] = {
            "IndexName": BY_OWNER_INDEX,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": {"#name": "name"},
            "ExpressionAttributeValues": values,
        }
        while True:
            page = self._table.query(**query)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted(map(KeyRecord.from_item, items), key=lambda k: (k.issued_at, k.key_hash))

    def revoke_owner(self, owner: str, *, now: datetime) -> list[KeyRecord]:
        """Revoke every live key of `owner`; the keys revoked now (none: nothing was live)."""
        return [k for k in self.keys_of(owner) if k.revoked_at is None and self._end(k, now)]

    def revoke_fingerprint(
        self, fingerprint: str, *, now: datetime, owner: str | None = None
    ) -> KeyRecord | None:
        """Revoke the live key with this fingerprint (of `owner`, if given): the key revoked,
        None when no live key has it. AmbiguousFingerprint when it names several live keys."""
        wanted = normal_fingerprint(fingerprint)
        if owner is not None:
            # The owner's own keys: every one is in ByOwner, even those issued before the
            # fingerprint index existed.
            found = self.keys_of(owner, fingerprint=wanted)
        else:
            found = self._with_fingerprint(wanted)
        candidates = [k for k in found if k.revoked_at is None]
        if len(candidates) > 1:
            raise AmbiguousFingerprint(wanted, sorted({k.owner for k in candidates}))
        if not candidates or not self._end(candidates[0], now):
            return None
        return candidates[0]

    def _with_fingerprint(self, wanted: str) -> list[KeyRecord]:
        entry = self._table.get_item(Key={"key_hash": _FINGERPRINT_ITEM + wanted}).get("Item")
        hashes: set[str] = (entry or {}).get("key_hashes", set())  # type: ignore[assignment]
        records = []
        for digest in sorted(hashes):
            item = self._table.get_item(Key={"key_hash": digest}).get("Item")
            if item is not None:  # a hash whose key was never put (see issue)
                records.append(KeyRecord.from_item(item))
        return records

    def _end(self, record: KeyRecord, now: datetime) -> bool:
        """Revoke one key unless it already is (its first revocation time stays)."""
        try:
            self._table.update_item(
                Key={"key_hash": record.key_hash},
                UpdateExpression="SET revoked_at = :now",
                ConditionExpression=(
                    "attribute_exists(key_hash) AND attribute_not_exists(revoked_at)"
                ),
                ExpressionAttributeValues={":now": now.isoformat()},
            )
        except self._table.meta.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def owner_of(self, key: str | None) -> str | None:
        """`apikey:<name>` for a live key; None for a malformed, unknown or revoked one."""
        if not well_formed(key):
            return None
        assert key is not None
        item = self._table.get_item(Key={"key_hash": key_hash(key)}).get("Item")
        if item is None or item.get("revoked_at"):
            return None
        return OWNER_PREFIX + str(item["name"])
