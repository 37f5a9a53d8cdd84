"""Lazily created, cached boto3 clients: nothing is built at import, so moto fixtures set up first.

boto3 itself is imported by the first client made, not with this module: a cold start pays for
it when the function first calls AWS, and a module that only names these factories (or catches
ClientError) costs its importer nothing more.

Endpoints come from boto3's own AWS_ENDPOINT_URL support, which is how the local stack points
every client at its moto server.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from botocore.config import Config
    from mypy_boto3_dynamodb.service_resource import Table
    from mypy_boto3_events.client import EventBridgeClient
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_stepfunctions.client import SFNClient


@lru_cache(maxsize=1)
def client_config() -> Config:
    """Standard mode retries throttling and 5xx with backoff for every AWS call we make."""
    from botocore.config import Config

    return Config(retries={"max_attempts": 5, "mode": "standard"})


@lru_cache(maxsize=1)
def s3_client() -> S3Client:
    import boto3
    from botocore.config import Config

    # SigV4 presigned URLs work in every region and against moto.
    return boto3.client("s3", config=client_config().merge(Config(signature_version="s3v4")))


@lru_cache(maxsize=1)
def sfn_client() -> SFNClient:
    import boto3

    return boto3.client("stepfunctions", config=client_config())


@lru_cache(maxsize=1)
def sqs_client() -> SQSClient:
    import boto3

    return boto3.client("sqs", config=client_config())


@lru_cache(maxsize=1)
def events_client() -> EventBridgeClient:
    import boto3

    return boto3.client("events", config=client_config())


@lru_cache(maxsize=4)
def dynamodb_table(name: str) -> Table:
    import boto3

    return boto3.resource("dynamodb", config=client_config()).Table(name)


def error_code(exc: ClientError) -> str:
    """The AWS error code of a failed call, e.g. "ConditionalCheckFailedException"."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def clear_clients() -> None:
    """Forget cached clients (tests switch between moto backends)."""
    for factory in (s3_client, sfn_client, sqs_client, events_client, dynamodb_table):
        factory.cache_clear()
