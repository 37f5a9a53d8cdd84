"""Workflow task: send the job's stored request upstream, at most once (see submit_upstream)."""

from imagegateway.handlers import workflow_task
from imagegateway.service import submit_upstream

lambda_handler = workflow_task(submit_upstream)
