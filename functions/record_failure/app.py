"""Workflow task: the one failure path. Marks the job FAILURE with a code and a message."""

from imagegateway.entrypoints.handlers import workflow_task
from imagegateway.use_cases.steps.fail_job import fail_job

lambda_handler = workflow_task(fail_job, requires=("usage_table_name",))
