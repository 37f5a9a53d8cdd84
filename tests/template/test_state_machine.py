"""The state machine and the ASL it runs: timeouts, retries and catches, substitutions,
transitions, the workflow type; no output invites StartExecution.

These tests read files only: no network, no AWS account, no Docker.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.template.support import (
    ASL,
    PLACEHOLDER,
    STATE_MACHINE_ID,
    as_list,
    iter_statements,
    resources_of_type,
)

pytestmark = pytest.mark.usefixtures("no_network")


LAMBDA_SERVICE_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}


def iter_scopes(machine: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield every state-machine scope (top level, Parallel branches, Map processors)."""
    yield path or "<top>", machine
    for name, state in machine.get("States", {}).items():
        for i, branch in enumerate(state.get("Branches", [])):
            yield from iter_scopes(branch, f"{path}/{name}/Branches/{i}")
        for key in ("ItemProcessor", "Iterator"):
            if isinstance(state.get(key), dict):
                yield from iter_scopes(state[key], f"{path}/{name}/{key}")


def iter_states(machine: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for scope, sub in iter_scopes(machine):
        for name, state in sub.get("States", {}).items():
            yield f"{scope}/{name}", state


def transitions(state: dict[str, Any]) -> list[str]:
    targets = [state[k] for k in ("Next", "Default") if k in state]
    targets += [rule["Next"] for rule in state.get("Choices", []) if "Next" in rule]
    targets += [catcher["Next"] for catcher in state.get("Catch", []) if "Next" in catcher]
    return targets


def function_of_task(state: dict[str, Any]) -> str | None:
    """The DefinitionSubstitutions key a lambda:invoke Task calls (CheckUpstreamFunctionArn)."""
    name = state.get("Parameters", {}).get("FunctionName", "")
    match = PLACEHOLDER.fullmatch(name)
    return match.group(1) if match else None


def test_no_output_invites_callers_to_start_executions(template: dict[str, Any]) -> None:
    # Given the stack's outputs, the state machine's among them
    outputs = template["Outputs"]
    machine = outputs["StateMachineArn"]
    assert machine["Value"] == {"Ref": STATE_MACHINE_ID}
    start = re.compile(r"start[\s_-]*(an\s+|the\s+)?execution", re.IGNORECASE)
    # When their descriptions are read
    # Then none invites StartExecution: jobs enter through the API only (the submit function
    # records the row a workflow's tasks verify), and the machine's says it is no entry point
    assert [name for name, output in outputs.items() if start.search(output["Description"])] == []
    assert re.search(r"\bnot an entry point\b", machine["Description"], re.IGNORECASE)


def test_machine_has_a_timeout_above_the_job_deadline(
    asl: dict[str, Any], template: dict[str, Any]
) -> None:
    # Given the state machine and the job deadline parameter
    max_deadline = int(template["Parameters"]["JobDeadlineSeconds"]["MaxValue"])
    # When the machine's own timeout is read
    timeout = asl.get("TimeoutSeconds")
    # Then it exists and leaves room for the deadline to be handled inside the workflow
    assert isinstance(timeout, int)
    assert timeout > max_deadline


def test_every_choice_state_has_a_default(asl: dict[str, Any]) -> None:
    # Given every Choice state
    choices = {name: s for name, s in iter_states(asl) if s["Type"] == "Choice"}
    assert choices
    # When their Default is looked for / Then each has one
    assert [name for name, s in choices.items() if "Default" not in s] == []


def test_every_task_retries_lambda_service_errors_and_catches(asl: dict[str, Any]) -> None:
    # Given every Task state
    tasks = {name: s for name, s in iter_states(asl) if s["Type"] == "Task"}
    assert tasks
    for name, task in tasks.items():
        # When its retriers (that retry at least once) are collected
        covered = {
            error
            for retrier in task.get("Retry", [])
            if retrier.get("MaxAttempts", 3) > 0
            for error in retrier["ErrorEquals"]
        }
        # Then Lambda's transient service errors are retried and every failure is caught
        assert "States.ALL" in covered or covered >= LAMBDA_SERVICE_ERRORS, name
        caught = {error for catcher in task.get("Catch", []) for error in catcher["ErrorEquals"]}
        assert "States.ALL" in caught, name


def test_submit_upstream_is_never_retried_after_an_upstream_error(asl: dict[str, Any]) -> None:
    # Given the task that POSTs upstream, and every error name a gateway error can carry
    # (the class names imagegateway.domain.errors raises, which a Retry would match)
    from imagegateway.domain import errors

    typed = {
        name
        for name, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.GatewayError)
    }
    assert {"UpstreamOutcomeUnknownError", "UpstreamTimeoutError"} <= typed
    tasks = {
        name: state
        for name, state in iter_states(asl)
        if state["Type"] == "Task" and function_of_task(state) == "SubmitUpstreamFunctionArn"
    }
    assert list(tasks) == ["<top>/SubmitUpstream"]
    assert asl["StartAt"] == "SubmitUpstream"  # the job goes upstream from the workflow
    (task,) = tasks.values()
    # When the errors its retriers match are collected
    retried = {error for retrier in task.get("Retry", []) for error in retrier["ErrorEquals"]}
    # Then none is an error raised after the POST may have been sent: no typed gateway error,
    # and no catch-all that would match one (Lambda's own errors and crashes only: a re-run
    # finds the claim on the job row and never POSTs again)
    assert retried & typed == set()
    assert retried & {"States.ALL", "States.TaskFailed"} == set()
    assert retried >= LAMBDA_SERVICE_ERRORS


def test_every_task_outlasts_its_function(asl: dict[str, Any], template: dict[str, Any]) -> None:
    # Given every Task, the function it invokes and that function's Lambda timeout
    substitutions = template["Resources"][STATE_MACHINE_ID]["Properties"]["DefinitionSubstitutions"]
    default_timeout = template["Globals"]["Function"]["Timeout"]
    tasks = {name: s for name, s in iter_states(asl) if s["Type"] == "Task"}
    assert tasks
    for name, task in tasks.items():
        key = function_of_task(task)
        if key is None:
            continue  # a service integration (PublishCompletion's putEvents), no function
        function = substitutions[key]["Fn::GetAtt"][0]
        props = template["Resources"][function]["Properties"]
        # When the task's own timeout is compared with the function's
        # Then Step Functions never gives up (and retries) while the invocation still runs:
        # a SubmitUpstream re-run must start only after the first run has ended
        assert task["TimeoutSeconds"] > props.get("Timeout", default_timeout), name


def test_placeholders_match_the_definition_substitutions(template: dict[str, Any]) -> None:
    # Given the raw ASL text and the template's substitutions
    placeholders = set(PLACEHOLDER.findall(ASL.read_text(encoding="utf-8")))
    props = template["Resources"][STATE_MACHINE_ID]["Properties"]
    substitutions = props["DefinitionSubstitutions"]
    # When they are compared / Then every placeholder is substituted and none is unused
    assert placeholders == set(substitutions)


def test_substituted_functions_are_invokable_by_the_machine(template: dict[str, Any]) -> None:
    # Given the substitutions and the state machine's policies
    props = template["Resources"][STATE_MACHINE_ID]["Properties"]
    functions = resources_of_type(template, "AWS::Serverless::Function")
    invokable = {
        resource["Fn::GetAtt"][0]
        for statement in iter_statements(props["Policies"])
        if "lambda:InvokeFunction" in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
    }
    for key, value in props["DefinitionSubstitutions"].items():
        if key == "EventBusName":  # the bus PublishCompletion puts events on
            assert value == {"Ref": "EventBus"}
            continue
        # When a substitution is resolved
        logical_id, attribute = value["Fn::GetAtt"]
        # Then it is a function's ARN, and the machine may invoke that function
        assert attribute == "Arn", key
        assert logical_id in functions, key
        assert logical_id in invokable, key


def test_transitions_are_valid_and_every_state_is_reachable(asl: dict[str, Any]) -> None:
    problems = []
    for scope, machine in iter_scopes(asl):
        # Given one scope's states
        states = machine["States"]
        assert machine["StartAt"] in states, scope
        # When every transition is followed from StartAt
        for name, state in states.items():
            problems += [
                f"{scope}/{name} -> {target}: no such state"
                for target in transitions(state)
                if target not in states
            ]
        seen, todo = set(), [machine["StartAt"]]
        while todo:
            name = todo.pop()
            if name in seen or name not in states:
                continue
            seen.add(name)
            todo += transitions(states[name])
        # Then every target exists and no state is orphaned
        problems += [f"{scope}/{name}: unreachable" for name in states.keys() - seen]
    assert problems == []


def test_the_machine_may_start_itself_by_the_name_it_is_given(template: dict[str, Any]) -> None:
    # Given the state machine and its role's HandOver statement (Express: a new execution of
    # the same machine every 150 s)
    machine = template["Resources"]["ImageJobStateMachine"]["Properties"]
    statements = [
        statement
        for policy in machine["Policies"]
        for statement in policy.get("Statement", [])
        if statement.get("Sid") == "HandOverToNextExecution"
    ]
    # Then the statement names exactly the machine's own name, whose type is part of it (a
    # changed WorkflowType replaces the machine, which CloudFormation can do only under a new
    # name), and the machine's type is the parameter
    (statement,) = statements
    assert statement["Action"] == ["states:StartExecution"]
    assert machine["Name"] == {"Fn::Sub": "${AWS::StackName}-image-job-${WorkflowType}"}
    assert statement["Resource"]["Fn::Sub"].endswith(":stateMachine:" + machine["Name"]["Fn::Sub"])
    assert machine["Type"] == {"Ref": "WorkflowType"}
    assert template["Parameters"]["WorkflowType"]["AllowedValues"] == ["STANDARD", "EXPRESS"]


def test_an_express_machine_never_stretches_a_status_check(template: dict[str, Any]) -> None:
    # Given the check function's environment / Then with EXPRESS the stretch is 0 (the state
    # machine waits between checks: it bills duration, and a stretch would bill it twice)
    variables = template["Resources"]["CheckUpstreamFunction"]["Properties"]["Environment"][
        "Variables"
    ]
    assert variables["UPSTREAM_POLL_STRETCH_SECONDS"] == {
        "Fn::If": ["ExpressWorkflow", 0, {"Ref": "StatusCheckStretchSeconds"}]
    }
    assert template["Conditions"]["ExpressWorkflow"] == {
        "Fn::Equals": [{"Ref": "WorkflowType"}, "EXPRESS"]
    }
