"""Each owner's own webhook secret, derived from the master; two signatures while a rotation
overlaps. No AWS: the master is handed in (issue #20, finding 2)."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from imagegateway.adapters.webhook_secrets import WebhookSecrets, owner_secret
from imagegateway.adapters.webhooks import signatures
from imagegateway.platform.settings import Settings

MASTER = "whsec_" + "M" * 32
NEW_MASTER = "N" * 32  # the bare form, as Secrets Manager holds it
SETTINGS = Settings(jobs_table_name="jobs", images_bucket_name="images")


@given(st.text(min_size=1), st.text(min_size=1))
def test_two_owners_never_share_a_secret(first: str, second: str) -> None:
    # Given two owners / Then their secrets differ exactly when the owners do, and are stable
    assert (owner_secret(MASTER, first) == owner_secret(MASTER, second)) == (first == second)
    assert owner_secret(MASTER, first) == owner_secret(MASTER, first)


def test_a_secret_is_a_standard_webhooks_secret_that_verifies_only_its_owners_webhooks() -> None:
    # Given alice's and bob's secrets, and a body signed with alice's
    alice, bob = owner_secret(MASTER, "iam:AIDAALICE"), owner_secret(MASTER, "iam:AIDABOB0")
    body = json.dumps({"type": "image.succeeded", "data": {}})
    timestamp = int(time.time())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signatures([alice], "msg_1", timestamp, body),
    }
    # Then the reference library verifies it with alice's, and refuses bob's and the master
    assert Webhook(alice).verify(body, headers) == json.loads(body)
    for other in (bob, MASTER):
        with pytest.raises(WebhookVerificationError):
            Webhook(other).verify(body, headers)


def test_while_a_rotation_overlaps_a_webhook_verifies_with_the_old_and_the_new_secret() -> None:
    # Given a rotated master: the new one current, the old one AWSPREVIOUS
    secrets = WebhookSecrets(SETTINGS, read_master=lambda: NEW_MASTER, read_previous=lambda: MASTER)
    owner = "account:123456789012"
    signing = secrets.signing_secrets_for(owner)
    # Then the owner's webhooks carry two signatures, and either secret verifies them
    assert signing == [owner_secret(NEW_MASTER, owner), owner_secret(MASTER, owner)]
    timestamp = int(time.time())
    body = "{}"
    headers = {
        "webhook-id": "msg_2",
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signatures(signing, "msg_2", timestamp, body),
    }
    for receiver in signing:
        assert Webhook(receiver).verify(body, headers) == {}
    # And GET /v1/webhooks/secret answers the new one
    assert secrets.secret_for(owner) == owner_secret(NEW_MASTER, owner)


def test_without_a_previous_version_one_signature() -> None:
    secrets = WebhookSecrets(SETTINGS, read_master=lambda: MASTER, read_previous=lambda: None)
    assert secrets.signing_secrets_for("iam:AIDAALICE") == [owner_secret(MASTER, "iam:AIDAALICE")]
