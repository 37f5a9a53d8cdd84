"""`make api-key NAME=team-a`: issue an API key for the keyed API (`API-Key: <key>`), or revoke
one. The key is printed once; only its hash is stored.

    python -m local.api_keys issue NAME [--table T] [--endpoint-url URL]
    python -m local.api_keys revoke KEY [--table T] [--endpoint-url URL]

Without --table it reads out/stack-outputs.json (STACK_OUTPUTS_FILE), written by `make run`:
the local stack's ApiKeysTableName and its moto endpoint. For a deployed stack pass its
ApiKeysTableName output; the AWS credentials and region come from the environment.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from local.aws_stack import REPO

OUTPUTS = Path(os.environ.get("STACK_OUTPUTS_FILE") or REPO / "out" / "stack-outputs.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.api_keys", description=__doc__)
    parser.add_argument("action", choices=("issue", "revoke"))
    parser.add_argument("subject", help="issue: the owner's name; revoke: the key")
    parser.add_argument("--table", help="the stack's ApiKeysTableName output")
    parser.add_argument("--endpoint-url", help="an AWS endpoint (the local moto server)")
    args = parser.parse_args(argv)
    table, endpoint = args.table, args.endpoint_url
    if table is None:
        if not OUTPUTS.exists():
            parser.error(f"no --table and no {OUTPUTS}: start `make run`, or pass --table")
        outputs = json.loads(OUTPUTS.read_text(encoding="utf-8"))
        table, endpoint = outputs["ApiKeysTableName"], endpoint or outputs.get("AwsEndpointUrl")
    if endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    from imagegateway.adapters.api_key_store import ApiKeyStore, fingerprint

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
    if not store.revoke(args.subject, now=now):
        print("no such key", file=sys.stderr)
        return 1
    print(
        f"revoked {fingerprint(args.subject)} (cached answers expire within 5 minutes)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
