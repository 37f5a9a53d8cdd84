"""Workflow task: the one failure path. Marks the job FAILURE with a code and a message."""

from imagegateway.fail_job import fail_job
from imagegateway.handlers import workflow_task

lambda_handler = workflow_task(fail_job, requires=("usage_table_name",))
