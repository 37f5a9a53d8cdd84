"""Workflow task: the one failure path. Marks the job FAILURE with a code and a message."""

from imagegateway.handlers import workflow_task
from imagegateway.service import record_failure

lambda_handler = workflow_task(record_failure)
