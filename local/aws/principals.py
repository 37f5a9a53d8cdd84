"""The principals the local stack acts as, with the unique ids AWS would give them (dev only).

Nothing is signed locally, so the local HTTP API and the local queue poller say who a request
is from the way API Gateway (`userId`) and SQS (`SenderId`) would: by the principal's unique id.
By default that is the local account itself (its root user, whose unique id is the account
number), the same principal the local bus names as the account of every event put on it, so
requests from every entry are one owner and `WebhookSigningSecret` signs all their webhooks. A
name (`X-Local-Caller: <name>` over HTTP, the `LocalSender` message attribute on the queue)
makes it the IAM user `user/<name>`, the same owner on both entries.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from local.aws.template import ACCOUNT

# The characters IAM allows in a user name.
_IAM_USER_NAME = re.compile(r"^[A-Za-z0-9+=,.@_-]{1,64}$")
CALLER_HEADER = "X-Local-Caller"
SENDER_ATTRIBUTE = "LocalSender"


@dataclass(frozen=True)
class LocalPrincipal:
    arn: str
    unique_id: str


ACCOUNT_ROOT = LocalPrincipal(arn=f"arn:aws:iam::{ACCOUNT}:root", unique_id=ACCOUNT)


def unique_id_of(arn: str) -> str:
    """A stable made-up IAM user id (`AIDA` + 17 characters, as IAM's are 21 long)."""
    if arn == ACCOUNT_ROOT.arn:
        return ACCOUNT
    return "AIDA" + hashlib.sha256(arn.encode()).hexdigest()[:17].upper()


def local_principal(name: str | None) -> LocalPrincipal:
    """The account root without a name, else the IAM user of that name (ValueError if IAM would
    refuse the name)."""
    name = (name or "").strip()
    if not name:
        return ACCOUNT_ROOT
    if not _IAM_USER_NAME.fullmatch(name):
        raise ValueError("a local caller is an IAM user name ([A-Za-z0-9+=,.@_-], 1-64)")
    arn = f"arn:aws:iam::{ACCOUNT}:user/{name}"
    return LocalPrincipal(arn=arn, unique_id=unique_id_of(arn))
