"""`make run`: the whole gateway on this machine, in the foreground. No Docker, no AWS account,
no API key.

On 127.0.0.1 it starts:
- a moto server (MOTO_PORT, default 5000) holding the resources of template.yaml, built by
  `local.aws.resources.build_stack`: the table, the bucket, the secret, the functions and the state
  machine from statemachine/, which moto's ASL interpreter executes; its Lambda tasks run the
  real handlers in this process;
- the fake upstream (FAKE_UPSTREAM_PORT, default 8081), unless IMAGEPIPELINE_API_KEY is set:
  then the stack calls the real upstream (UPSTREAM_BASE_URL, default https://api.imagepipeline.io);
- the gateway's HTTP API (GATEWAY_PORT, default 3000), routed as the template routes it
  (`local.stack.gateway_http`);
- the template's SQS event-source mappings (the request queue's intake, the webhook deliveries),
  polled as Lambda polls them, with their maximum concurrency; the bus's rules deliver to their
  queues in moto; and a local CompletionQueue subscribed to every completion event, to watch.

It prints a line containing `ready` with the three URLs once all of them answer, then one line
per Lambda invocation. Ctrl-C or SIGTERM stops everything (exit 0). A port of 0 picks a free one
(the ready line tells which).

Settings, from the environment:
  GATEWAY_PORT, MOTO_PORT, FAKE_UPSTREAM_PORT   the three ports
  FAKE_UPSTREAM_API_KEY (local-dev-key), FAKE_PENDING_POLLS (2)   the fake upstream
  IMAGEPIPELINE_API_KEY, UPSTREAM_BASE_URL      the real upstream instead of the fake
  LOG_LEVEL (WARNING)                           the functions' Powertools log level
  RECONCILE_INTERVAL_SECONDS (30), STACK_OUTPUTS_FILE (out/stack-outputs.json)
  LOCAL_AWS_CALLS_FILE                          each function's AWS calls, as JSON lines
  POLL_INTERVAL_SECONDS, JOB_DEADLINE_SECONDS and any other setting the functions read
  (platform.settings; the template's values unless set), passed to them as the template's
  parameter or variable.

The package: `settings` (what it starts, from the environment), `gateway_stack` (the servers and
the stack built in moto), `gateway_http` (the HTTP API's local server), `console` (its output),
`process` (`python -m local.stack` as a child process, for the demo and the e2e tests),
`__main__` (`python -m local.stack`).
"""

from local.stack.process import StackProcess
from local.stack.settings import StackError, StackSettings, StackUrls

__all__ = ["StackError", "StackProcess", "StackSettings", "StackUrls"]
