"""The tables and the bucket: the idempotency and jobs tables' keys and indexes, a private,
encrypted, TLS-only bucket.

These tests read files only: no network, no AWS account, no Docker.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

pytestmark = pytest.mark.usefixtures("no_network")


def test_bucket_is_private_encrypted_and_tls_only(template: dict[str, Any]) -> None:
    # Given the images bucket and its policy
    bucket = template["Resources"]["ImagesBucket"]["Properties"]
    policy = template["Resources"]["ImagesBucketPolicy"]["Properties"]["PolicyDocument"]
    # When their settings are read / Then no public access, SSE, and plain HTTP is denied
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert any(
        s["Effect"] == "Deny"
        and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
        for s in policy["Statement"]
    )


def test_idempotency_table_matches_powertools_defaults(template: dict[str, Any]) -> None:
    # Given the idempotency table and the attribute names Powertools' DynamoDB layer defaults to
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(DynamoDBPersistenceLayer).parameters.items()
    }
    props = template["Resources"]["IdempotencyTable"]["Properties"]
    # When its key, TTL and protections are read
    # Then the hash key is `id` (a string), alone; `expiration` is the TTL attribute
    assert props["KeySchema"] == [{"AttributeName": defaults["key_attr"], "KeyType": "HASH"}]
    assert props["AttributeDefinitions"] == [
        {"AttributeName": defaults["key_attr"], "AttributeType": "S"}
    ]
    assert defaults["key_attr"] == "id"
    assert props["TimeToLiveSpecification"] == {
        "AttributeName": defaults["expiry_attr"],
        "Enabled": True,
    }
    assert defaults["expiry_attr"] == "expiration"
    # And it is on-demand, point-in-time recoverable and encrypted
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True


def test_jobs_table_has_the_sparse_pending_by_deadline_index(template: dict[str, Any]) -> None:
    # Given the jobs table and the names the jobs store queries with

    from imagegateway.adapters import job_store as jobs

    props = template["Resources"]["JobsTable"]["Properties"]
    indexes = {index["IndexName"]: index for index in props["GlobalSecondaryIndexes"]}
    attribute_types = {
        a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]
    }
    # When the index the reconciler queries is looked up
    index = indexes[jobs.PENDING_INDEX]
    # Then it is keyed by the pending mark, sorted by deadline, and projects whole rows
    assert jobs.PENDING_INDEX == "PendingByDeadline"
    assert index["KeySchema"] == [
        {"AttributeName": jobs.PENDING_ATTRIBUTE, "KeyType": "HASH"},
        {"AttributeName": "deadline_at", "KeyType": "RANGE"},
    ]
    assert index["Projection"] == {"ProjectionType": "ALL"}
    assert attribute_types == {
        "job_id": "S",
        jobs.PENDING_ATTRIBUTE: "S",
        "deadline_at": "S",
        "owner": "S",
        "created_at": "S",
        "cache_key": "S",
        jobs.UNTOLD_ATTRIBUTE: "S",
        "completed_at": "S",
    }
    # And it is sparse: `pending` is not the table's own key, so rows without it stay out
    assert jobs.PENDING_ATTRIBUTE not in {k["AttributeName"] for k in props["KeySchema"]}
    # And the list route's index holds a caller's jobs by creation time
    assert indexes[jobs.OWNER_INDEX]["KeySchema"] == [
        {"AttributeName": "owner", "KeyType": "HASH"},
        {"AttributeName": "created_at", "KeyType": "RANGE"},
    ]
    # And the ends left untold are found by the sparse untold mark, oldest end first
    assert indexes[jobs.UNTOLD_INDEX]["KeySchema"] == [
        {"AttributeName": jobs.UNTOLD_ATTRIBUTE, "KeyType": "HASH"},
        {"AttributeName": "completed_at", "KeyType": "RANGE"},
    ]
    # And the result cache's index holds successful fixed-seed jobs by key, newest first
    assert indexes[jobs.CACHE_INDEX]["KeySchema"] == [
        {"AttributeName": "cache_key", "KeyType": "HASH"},
        {"AttributeName": "completed_at", "KeyType": "RANGE"},
    ]
