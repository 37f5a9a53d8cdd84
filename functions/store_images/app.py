"""Workflow task: copy every image into S3 and mark the job SUCCESS (idempotent on retry)."""

from imagegateway.entrypoints.handlers import workflow_task
from imagegateway.use_cases.steps.store_job import store_job

lambda_handler = workflow_task(store_job)
