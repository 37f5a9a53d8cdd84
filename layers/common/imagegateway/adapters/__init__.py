"""Adapters: the concrete stores and clients behind the use cases' ports (DynamoDB, Step
Functions, S3, EventBridge, SQS, the upstream over HTTP). The only wing but the entry points
that touches boto3, botocore and requests."""
