"""Workflow task: ask the upstream once; return the ticket with its status and the next wait."""

from imagegateway.handlers import workflow_task
from imagegateway.service import check_job

lambda_handler = workflow_task(check_job)
