"""What moto needs patched for the stack's real handlers to run in-process: its Lambda invokes
(`LambdaFunction._invoke_lambda`: each calls `run_handler`), its Step Functions
`states:startExecution` integration's parameter names, and the `account` its EventBridge leaves
out of the events it delivers. moto offers no public hook for any of them.
"""

from __future__ import annotations

import contextlib
import json
import traceback
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any
from unittest import mock

from local.aws.lambda_runtime import InvocationObserver, InvokeHook, run_handler
from local.aws.resources import LocalStack


@contextmanager
def handlers_in_process(
    stack: LocalStack,
    before_invoke: InvokeHook | None = None,
    *,
    on_invoke: InvocationObserver | None = None,
    one_at_a_time: bool = False,
    max_concurrency: int | Mapping[str, int] | None = None,
    record: bool = True,
) -> Iterator[list[dict[str, Any]]]:
    """Patch moto so invoking one of the stack's functions calls its real handler here.

    Yields the list of invocations (function, event, error), for tests to inspect. A raised
    exception is reported the way the Lambda runtime reports it: errorType is the class name,
    which is what the state machine's Retry and Catch match on. `before_invoke` may raise to
    simulate a function dying. The local stack also passes `on_invoke` (told of every call, to
    log it), `one_at_a_time` (see `function_lock`) and `record=False` (a long-running process
    keeps no list).
    """
    from moto.awslambda.models import LambdaFunction

    invocations: list[dict[str, Any]] = []
    original = LambdaFunction._invoke_lambda

    def invoke(self: LambdaFunction, event: str | None = None) -> tuple[str, bool, str]:
        code_dir = stack.function_dirs.get(self.function_name)
        if code_dir is None:
            return original(self, event)
        payload = json.loads(event) if isinstance(event, str | bytes) else (event or {})
        entry: dict[str, Any] = {"function": self.function_name, "event": payload}
        if record:
            invocations.append(entry)
        try:
            result = run_handler(
                stack,
                self.function_name,
                payload,
                handler=self.handler or "app.lambda_handler",
                before_invoke=before_invoke,
                on_invoke=on_invoke,
                one_at_a_time=one_at_a_time,
                max_concurrency=max_concurrency,
            )
        except Exception as exc:  # the runtime turns any exception into a function error
            # An exception may name the Lambda error it stands for (e.g. "Sandbox.Timedout").
            error_type = str(getattr(exc, "lambda_error_type", type(exc).__name__))
            entry["error"] = error_type
            error = {
                "errorType": error_type,
                "errorMessage": str(exc),
                "stackTrace": traceback.format_exception(exc)[-3:],
            }
            return json.dumps(error), True, ""
        return json.dumps(result), False, ""

    with (
        mock.patch.object(LambdaFunction, "_invoke_lambda", invoke),
        _sfn_integration_with_api_names(),
        _events_name_their_account(),
    ):
        yield invocations


def _events_name_their_account() -> AbstractContextManager[Any]:
    """moto 5.2's EventBridge leaves `account` out of an event it hands a target without an
    input transformer (its default template lacks it); EventBridge always sends it, and the
    intake reads the request's owner from it."""
    from moto.events.utils import EventTemplateParser

    template = EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE
    if '"account"' in template:
        return contextlib.nullcontext()
    with_account = template.replace(
        '"source": "<source>",', '"source": "<source>", "account": "<account>",'
    )
    return mock.patch.object(EventTemplateParser, "DEFAULT_EVENT_INPUT_TEMPLATE", with_account)


def _sfn_integration_with_api_names() -> AbstractContextManager[Any]:
    """moto 5.2's `states:startExecution` integration hands the ASL's field names
    (StateMachineArn, Name, Input) to boto3 unchanged, and the Step Functions API spells them
    stateMachineArn, name, input, so every start fails; AWS maps them. The local stack maps
    them too (the HandOver state of an Express machine uses this integration)."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_sfn,
    )

    service = state_task_service_sfn.StateTaskServiceSfn
    original = service._normalise_parameters

    def normalise(self: Any, parameters: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        original(self, parameters, *args, **kwargs)
        for key in list(parameters):
            api_name = key[:1].lower() + key[1:]
            if api_name != key:
                parameters[api_name] = parameters.pop(key)

    return mock.patch.object(service, "_normalise_parameters", normalise)
