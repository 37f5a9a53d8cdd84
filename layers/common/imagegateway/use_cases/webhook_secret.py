"""Use case, a caller's own webhook secret: the Standard Webhooks `whsec_` secret every webhook of
its jobs is signed with, and no other owner's (adapters.webhook_secrets derives it)."""

from __future__ import annotations

from imagegateway.use_cases.ports import Ports


def webhook_secret_of(owner: str, deps: Ports) -> str:
    return deps.webhook_secrets.secret_for(owner)
