"""API keys, for callers of the upstream's own kind: `API-Key: <key>`, as the upstream takes it.

A key is shown once, when it is issued; the table keeps only its SHA-256 (a key is 32 random
bytes, so a fast hash is enough: there is nothing to guess), the name of its owner, and when it
was issued or revoked. The HTTP API's Lambda authorizer (`authorize`) turns a key into its
owner, `apikey:<name>`, which is then the caller's identity for its jobs. Keys never appear in
logs: only the first characters of their hash (`fingerprint`).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime

from imagegateway.adapters.aws_clients import dynamodb_table

KEY_PREFIX = "igw_"
# Owner names: what IAM allows in a user name (the local stack's caller names too).
NAME_PATTERN = re.compile(r"^[A-Za-z0-9+=,.@_-]{1,64}$")
OWNER_PREFIX = "apikey:"
_KEY_PATTERN = re.compile(r"^igw_[A-Za-z0-9_-]{43}$")


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    # surrogatepass: a header with a lone surrogate is still hashed (for its fingerprint in the
    # refusal's log line) rather than failing the authorizer, which API Gateway answers 500.
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def fingerprint(key: str) -> str:
    """What logs may say about a key: the first 8 hex digits of its hash."""
    return key_hash(key)[:8]


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
        self._table.put_item(
            Item={"key_hash": key_hash(key), "name": name, "issued_at": now.isoformat()},
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

    def owner_of(self, key: str | None) -> str | None:
        """`apikey:<name>` for a live key; None for a malformed, unknown or revoked one."""
        if not well_formed(key):
            return None
        assert key is not None
        item = self._table.get_item(Key={"key_hash": key_hash(key)}).get("Item")
        if item is None or item.get("revoked_at"):
            return None
        return OWNER_PREFIX + str(item["name"])
