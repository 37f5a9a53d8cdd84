"""`imagegateway-keys`: issue an API key for the keyed API (`API-Key: <key>`), list an owner's
keys, or revoke keys. The key is printed once; only its hash is stored
(`adapters.api_key_store`), so an operator who kept no key manages it by owner and by the
fingerprint printed at issue (and in `list`).

    imagegateway-keys issue NAME                        a new key for NAME, printed once
    imagegateway-keys list NAME                         NAME's keys: fingerprint, issued, status
    imagegateway-keys revoke KEY                        that key
    imagegateway-keys revoke --fingerprint F [--owner NAME]   the live key with fingerprint F
    imagegateway-keys revoke --owner NAME               every live key of NAME

Each takes [--table T] [--endpoint-url URL].

For a deployed stack pass its ApiKeysTableName output (`pip install ./layers/common` puts the
command on PATH); the AWS credentials and region come from the environment, as for the AWS CLI.
Without --table it reads the local stack's outputs, out/stack-outputs.json of the current
directory (or STACK_OUTPUTS_FILE), written by `make run`: its ApiKeysTableName and moto endpoint.
`make api-key NAME=...`, `make api-keys NAME=...` and `make revoke-key FINGERPRINT=...` (or
NAME=...) run it.

An operator's tool, never a Lambda's: no function imports this module (tests/unit/
test_cold_imports.py holds that), though it ships in the layer with the rest of the package.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from imagegateway.adapters.api_key_store import (
    AmbiguousFingerprint,
    ApiKeyStore,
    KeyRecord,
    fingerprint,
    normal_fingerprint,
)

PROG = "imagegateway-keys"
LOCAL_OUTPUTS = Path("out") / "stack-outputs.json"


def outputs_file() -> Path:
    return Path(os.environ.get("STACK_OUTPUTS_FILE") or LOCAL_OUTPUTS)


# API Gateway caches the authorizer's answer for a key (ReauthorizeEvery in template.yaml).
CACHE_NOTE = "cached answers expire within 5 minutes"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # One flat parser, as before `list` and the revoke options existed: `revoke KEY --table T`
    # and `--table T revoke KEY` both keep working.
    parser.add_argument("action", choices=("issue", "list", "revoke"))
    parser.add_argument(
        "subject", nargs="?", help="issue, list: the owner's name; revoke: the key (or omit it)"
    )
    parser.add_argument("--fingerprint", help="revoke: the key with this fingerprint")
    parser.add_argument(
        "--owner", help="revoke: every key of this owner (or, with --fingerprint, its)"
    )
    parser.add_argument("--table", help="the stack's ApiKeysTableName output")
    parser.add_argument("--endpoint-url", help="an AWS endpoint (the local moto server)")
    args = parser.parse_args(argv)
    _check_usage(parser, args)
    table, endpoint = args.table, args.endpoint_url
    if table is None:
        outputs = outputs_file()
        if not outputs.exists():
            parser.error(f"no --table and no {outputs}: start `make run`, or pass --table")
        values = json.loads(outputs.read_text(encoding="utf-8"))
        table, endpoint = values["ApiKeysTableName"], endpoint or values.get("AwsEndpointUrl")
    if endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    # The store's boto3 client is made here, after the endpoint is set (never at import).
    store = ApiKeyStore(table)
    now = datetime.now(UTC)
    if args.action == "issue":
        try:
            key = store.issue(args.subject, now=now)
        except ValueError as exc:
            parser.error(str(exc))
        print(key, flush=True)
        print(
            f"issued for {args.subject} (fingerprint {fingerprint(key)}); shown once",
            file=sys.stderr,
        )
        return 0
    if args.action == "list":
        return _list(store, args.subject)
    if args.fingerprint is not None:
        try:
            record = store.revoke_fingerprint(args.fingerprint, now=now, owner=args.owner)
        except AmbiguousFingerprint as exc:
            print(exc, file=sys.stderr)
            return 1
        if record is None:
            # Keys issued before the fingerprint index existed are found through their owner.
            whose = f" of {args.owner}" if args.owner else " (an older key: add --owner NAME)"
            print(f"no live key with fingerprint {args.fingerprint}{whose}", file=sys.stderr)
            return 1
        return _revoked([record])
    if args.owner is not None:
        records = store.revoke_owner(args.owner, now=now)
        if not records:
            print(f"no live key of {args.owner}", file=sys.stderr)
            return 1
        return _revoked(records)
    if not store.revoke(args.subject, now=now):
        print("no such key", file=sys.stderr)
        return 1
    print(f"revoked {fingerprint(args.subject)} ({CACHE_NOTE})", file=sys.stderr)
    return 0


def _check_usage(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Each action names exactly one thing: a usage error (exit 2) otherwise."""
    by_option = args.fingerprint is not None or args.owner is not None
    if args.action != "revoke":
        if by_option:
            parser.error(f"{args.action} takes a name, not --fingerprint or --owner")
        if not args.subject:
            parser.error(f"{args.action} needs the owner's name")
        return
    if args.subject and by_option:
        parser.error("revoke takes a key, or --fingerprint / --owner, not both")
    if not args.subject and not by_option:
        parser.error("revoke needs a key, --fingerprint F or --owner NAME")
    if args.fingerprint is not None:
        try:
            normal_fingerprint(args.fingerprint)
        except ValueError as exc:
            parser.error(str(exc))


def _list(store: ApiKeyStore, owner: str) -> int:
    """One line per key of owner on stdout: fingerprint, issued at, live | revoked (since)."""
    records = store.keys_of(owner)
    for record in records:
        status = f"revoked {record.revoked_at}" if record.revoked_at else "live"
        print(f"{record.fingerprint}  {record.issued_at}  {status}")
    live = sum(record.revoked_at is None for record in records)
    print(f"{len(records)} keys of {owner}, {live} live", file=sys.stderr)
    return 0


def _revoked(records: list[KeyRecord]) -> int:
    for record in records:
        print(f"revoked {record.fingerprint} of {record.owner}", file=sys.stderr)
    count = f"{len(records)} key{'s' if len(records) != 1 else ''}"
    print(f"{count} revoked ({CACHE_NOTE})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
