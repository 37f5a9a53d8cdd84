"""Workflow task: copy every image into S3 and mark the job SUCCESS (idempotent on retry)."""

from imagegateway.handlers import workflow_task
from imagegateway.service import store_job_images

lambda_handler = workflow_task(store_job_images)
