"""`imagegateway-keys`: issue an API key for the keyed API (`API-Key: <key>`), or revoke one. The
key is printed once; only its hash is stored (`adapters.api_key_store`).

    imagegateway-keys issue NAME [--table T] [--endpoint-url URL]
    imagegateway-keys revoke KEY [--table T] [--endpoint-url URL]

For a deployed stack pass its ApiKeysTableName output (`pip install ./layers/common` puts the
command on PATH); the AWS credentials and region come from the environment, as for the AWS CLI.
Without --table it reads the local stack's outputs, out/stack-outputs.json of the current
directory (or STACK_OUTPUTS_FILE), written by `make run`: its ApiKeysTableName and moto endpoint.
`make api-key NAME=...` runs it.

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

from imagegateway.adapters.api_key_store import ApiKeyStore, fingerprint

PROG = "imagegateway-keys"
LOCAL_OUTPUTS = Path("out") / "stack-outputs.json"


def outputs_file() -> Path:
    return Path(os.environ.get("STACK_OUTPUTS_FILE") or LOCAL_OUTPUTS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=("issue", "revoke"))
    parser.add_argument("subject", help="issue: the owner's name; revoke: the key")
    parser.add_argument("--table", help="the stack's ApiKeysTableName output")
    parser.add_argument("--endpoint-url", help="an AWS endpoint (the local moto server)")
    args = parser.parse_args(argv)
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
