"""template.yaml's stack, built inside moto: the tests and `make run` share it, so the mocks cannot
drift from the infrastructure.

Resources are read from template.yaml (the table's keys and TTL, the bucket, the secrets, the
queues with their redrive policies, the event bus and its rules with their targets, the
functions with their handlers, environment and SQS event-source mappings, the state machine
file with its substitutions), never listed again here.

- `template`: the template as read (`load_template`), its HTTP API's routes, the local account,
  region and stack name;
- `resources`: `build_stack`, the template's resources created in moto (`LocalStack`);
- `lambda_runtime`: the functions' real handlers run in this process (`run_handler`, a Lambda
  context, one invocation at a time or a reserved concurrency), and SQS event-source mappings
  polled the way Lambda's poller does it (`poll_queue_once`: moto's own mapping invokes inside
  the sender's call and ignores partial batch failures);
- `moto_patches`: `handlers_in_process`, the two patches of moto's privates that make its
  Lambda invokes and its Step Functions interpreter call those handlers.
"""
