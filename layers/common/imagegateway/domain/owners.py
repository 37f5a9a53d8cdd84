"""Who owns a request: an identity AWS (or the gateway's own authorizer) vouches for, never a field
of the request. Budgets, idempotency keys, the result cache, the job list and the webhook secret
are all per owner.

- An IAM principal is named by its unique id (`AIDA...` a user, `AROA...` a role), the one name
  every entry learns for it: API Gateway's IAM authorizer (`userId`) and SQS (`SenderId`) both
  give it, so a role that queues requests and reads them over HTTP is one owner. A role's
  session name (`AROA...:<session>`) is dropped: whoever may assume the role picks it, so it
  proves nothing, and a client whose session name changes per task keeps its jobs. A unique id,
  unlike an ARN, is never reused by a principal deleted and made again under the same name.
- An account (an EventBridge request: the bus names the account that put it; the account's
  root user, whose unique id is its account number) is `account:<12 digits>`.
- An API key's owner is `apikey:<name>` (entrypoints.authorizer); a JWT's `jwt:<iss>#<sub>`.
"""

from __future__ import annotations

import re

ACCOUNT_PREFIX = "account:"
PRINCIPAL_PREFIX = "iam:"
_ACCOUNT_ID = re.compile(r"\d{12}")
# IAM unique ids are upper-case letters and digits (AIDA..., AROA..., AGPA...); 16 to 128 long.
_UNIQUE_ID = re.compile(r"[A-Z0-9]{16,128}")


class UnknownPrincipalError(ValueError):
    """What AWS named as the sender is not an IAM principal id (nothing to own the request)."""


def account_owner(account_id: str) -> str:
    if not _ACCOUNT_ID.fullmatch(account_id):
        raise UnknownPrincipalError(f"not an AWS account id: {account_id[:40]!r}")
    return f"{ACCOUNT_PREFIX}{account_id}"


def principal_owner(unique_id: str) -> str:
    """The owner of what an IAM principal sends, from its unique id as AWS gives it (SQS
    `SenderId`, API Gateway's `userId`): `AIDA...`, `AROA...:<session>`, or an account id."""
    principal = unique_id.strip().split(":", 1)[0]
    if _ACCOUNT_ID.fullmatch(principal):
        return account_owner(principal)
    if not _UNIQUE_ID.fullmatch(principal):
        raise UnknownPrincipalError(f"not an IAM principal id: {unique_id[:40]!r}")
    return f"{PRINCIPAL_PREFIX}{principal}"
