"""The functions: the contract environment, handlers and the layer, the reconciler's schedule and
failure queue, reserved concurrency.

These tests read files only: no network, no AWS account, no Docker.
"""

from __future__ import annotations

import ast
import json
from typing import Any

import pytest

from tests.template.support import (
    CONTRACT_RESOURCES,
    ROOT,
    STATE_MACHINE_ID,
    resolve,
    resources_of_type,
)

pytestmark = pytest.mark.usefixtures("no_network")


CONTRACT_ENV = {
    "JOBS_TABLE_NAME",
    "IMAGES_BUCKET_NAME",
    "UPSTREAM_BASE_URL",
    "UPSTREAM_API_KEY_SECRET_NAME",
    "JOB_DEADLINE_SECONDS",
    "PRESIGNED_URL_TTL_SECONDS",
    "JOB_RETENTION_DAYS",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
}


# Lambda keeps this much of an account's concurrency unreserved: a reservation of N needs a
# quota of N + 100, and new accounts often have a quota of 10 (where any reservation fails).
LAMBDA_UNRESERVED_MINIMUM = 100


NEW_ACCOUNT_CONCURRENCY_QUOTA = 10


def reserved_concurrency(cfn: dict[str, Any], **overrides: str) -> dict[str, int]:
    """Every translated function that reserves concurrency, with how much, for these values."""
    reserved = {}
    for name, function in resources_of_type(cfn, "AWS::Lambda::Function").items():
        props = resolve(function["Properties"], cfn, **overrides)
        if "ReservedConcurrentExecutions" in props:
            reserved[name] = int(props["ReservedConcurrentExecutions"])
    return reserved


def test_every_function_gets_the_contract_environment(translated: dict[str, Any]) -> None:
    # Given the translated Lambda functions
    functions = resources_of_type(translated, "AWS::Lambda::Function")
    assert set(functions) == {
        name for name, type_ in CONTRACT_RESOURCES.items() if type_ == "AWS::Serverless::Function"
    }
    for name, function in functions.items():
        # When their environment variables are read
        variables = function["Properties"]["Environment"]["Variables"]
        # Then every contract variable is set, and the runtime is the arm64 python3.12 one
        assert variables.keys() >= CONTRACT_ENV, name
        assert function["Properties"]["Runtime"] == "python3.12", name
        assert function["Properties"]["Architectures"] == ["arm64"], name
        assert function["Properties"]["TracingConfig"] == {"Mode": "Active"}, name
    submit = functions["SubmitFunction"]["Properties"]["Environment"]["Variables"]
    assert submit["STATE_MACHINE_ARN"] == {"Ref": STATE_MACHINE_ID}
    assert submit["IDEMPOTENCY_TABLE_NAME"] == {"Ref": "IdempotencyTable"}
    reconciler = functions["ReconcilerFunction"]["Properties"]["Environment"]["Variables"]
    assert reconciler["STATE_MACHINE_ARN"] == {"Ref": STATE_MACHINE_ID}
    assert reconciler["RECONCILE_MARGIN_SECONDS"] == {"Ref": "ReconcileMarginSeconds"}
    # Only the entries (HTTP submit, the queue's intake), the reconciler and cancel touch
    # executions;
    # the workflow's own tasks (SubmitUpstream included) never need the machine's ARN.
    assert {n for n, f in functions.items() if "STATE_MACHINE_ARN" in json.dumps(f)} == {
        "SubmitFunction",
        "IntakeFunction",
        "ReconcilerFunction",
        "JobStatusFunction",  # cancel stops the job's executions
    }
    # Only the entries hold Idempotency-Key records.
    assert {n for n, f in functions.items() if "IDEMPOTENCY_TABLE_NAME" in json.dumps(f)} == {
        "SubmitFunction",
        "IntakeFunction",
    }


def test_every_function_code_dir_has_its_handler(template: dict[str, Any]) -> None:
    # Given every function in the template, with the global handler unless it sets its own
    default_handler = template["Globals"]["Function"]["Handler"]
    functions = resources_of_type(template, "AWS::Serverless::Function")
    assert functions
    missing = []
    for name, function in functions.items():
        props = function["Properties"]
        module, _, attribute = props.get("Handler", default_handler).rpartition(".")
        source = ROOT / props["CodeUri"] / f"{module.replace('.', '/')}.py"
        # When its handler file is parsed
        if not source.is_file():
            missing.append(f"{name}: {source.relative_to(ROOT)} missing")
            continue
        tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
        defined = {
            node.name
            for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        } | {
            target.id
            for node in tree.body
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        # Then it defines the handler at module level (a function, or one a factory made)
        if attribute not in defined:
            missing.append(f"{name}: {attribute} not defined in {source.relative_to(ROOT)}")
    assert missing == []


def test_the_layer_holds_the_shared_package(template: dict[str, Any]) -> None:
    # Given the layer's content directory
    content = ROOT / template["Resources"]["CommonLayer"]["Properties"]["ContentUri"]
    # When it is listed / Then it has the package and the requirements the build installs
    assert (content / "imagegateway" / "__init__.py").is_file()
    assert (content / "requirements.txt").is_file()


def test_reconciler_runs_every_minute(template: dict[str, Any]) -> None:
    # Given the reconciler function
    props = template["Resources"]["ReconcilerFunction"]["Properties"]
    schedules = [
        event["Properties"]
        for event in props["Events"].values()
        if event["Type"] in {"Schedule", "ScheduleV2"}
    ]
    # When its schedule and timeout are read
    # Then one schedule fires every minute (a job whose workflow never started is started
    # within two minutes of its row), undeliverable runs go to the failure queue; a run may
    # overlap the next (harmless: every write is conditional, executions are named, and a
    # telling done is recorded; it reserves no concurrency, see
    # test_no_function_reserves_concurrency_by_default)
    assert len(schedules) == 1
    assert schedules[0]["ScheduleExpression"] == "rate(1 minute)"
    assert schedules[0]["DeadLetterConfig"]["Arn"] == {
        "Fn::GetAtt": ["ReconcilerFailureQueue", "Arn"]
    }
    assert props["Timeout"] < 5 * 60
    assert props["Handler"] == "app.lambda_handler"
    assert props["CodeUri"].rstrip("/") == "functions/reconciler"
    margin = template["Parameters"]["ReconcileMarginSeconds"]
    assert (margin["Type"], margin["Default"]) == ("Number", 120)


def test_reconciler_failures_are_kept_encrypted_and_alarmed(template: dict[str, Any]) -> None:
    # Given the reconciler's async invocation settings and its failure queue
    resources = template["Resources"]
    invoke_config = resources["ReconcilerFunction"]["Properties"]["EventInvokeConfig"]
    on_failure = invoke_config["DestinationConfig"]["OnFailure"]
    queue = resources["ReconcilerFailureQueue"]
    # When they are read
    # Then failed runs land in an SQS queue that is encrypted and keeps them for days
    assert on_failure == {
        "Type": "SQS",
        "Destination": {"Fn::GetAtt": ["ReconcilerFailureQueue", "Arn"]},
    }
    assert queue["Type"] == "AWS::SQS::Queue"
    assert queue["Properties"].get("KmsMasterKeyId") or queue["Properties"].get(
        "SqsManagedSseEnabled"
    )
    assert queue["Properties"]["MessageRetentionPeriod"] >= 4 * 24 * 3600
    # And an alarm fires as soon as one message is waiting there
    depth_alarms = [
        alarm["Properties"]
        for alarm in resources_of_type(template, "AWS::CloudWatch::Alarm").values()
        if alarm["Properties"].get("Namespace") == "AWS/SQS"
        and alarm["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
        and alarm["Properties"]["Dimensions"]
        == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["ReconcilerFailureQueue", "QueueName"]}}]
    ]
    assert len(depth_alarms) == 1
    assert (depth_alarms[0]["ComparisonOperator"], depth_alarms[0]["Threshold"]) == (
        "GreaterThanThreshold",
        0,
    )


def test_submit_concurrency_is_an_opt_in_cap_on_upstream_posts(template: dict[str, Any]) -> None:
    # Given the parameter that caps parallel upstream POSTs, its condition and the function
    # that makes the POSTs
    parameter = template["Parameters"]["SubmitConcurrency"]
    condition = template["Conditions"]["ReserveSubmitConcurrency"]
    props = template["Resources"]["SubmitUpstreamFunction"]["Properties"]
    # When they are read
    # Then the cap is a Number, 0 (no reservation) by default and allowed, documented with
    # the account quota it needs
    assert (parameter["Type"], parameter["Default"], parameter["MinValue"]) == ("Number", 0, 0)
    assert "quota" in parameter["Description"]
    # And a value other than 0 becomes SubmitUpstream's reservation; 0 removes the property
    assert condition == {"Fn::Not": [{"Fn::Equals": [{"Ref": "SubmitConcurrency"}, 0]}]}
    assert props["ReservedConcurrentExecutions"] == {
        "Fn::If": [
            "ReserveSubmitConcurrency",
            {"Ref": "SubmitConcurrency"},
            {"Ref": "AWS::NoValue"},
        ]
    }


def test_no_function_reserves_concurrency_by_default(translated: dict[str, Any]) -> None:
    # Given the stack as deployed with the default parameters (SubmitConcurrency 0), and
    # Lambda's rule that N reserved needs an account quota of at least N + 100
    # When every function's reserved concurrency is resolved
    by_default = reserved_concurrency(translated)
    explicit_zero = reserved_concurrency(translated, SubmitConcurrency="0")
    # Then none reserves any: a first deploy succeeds on a new account whose quota is 10
    assert by_default == {}
    assert explicit_zero == {}
    total = sum(by_default.values())
    assert total == 0 or total + LAMBDA_UNRESERVED_MINIMUM <= NEW_ACCOUNT_CONCURRENCY_QUOTA
    # And nothing else claims account concurrency either (no provisioned concurrency)
    assert "ProvisionedConcurrencyConfig" not in json.dumps(translated["Resources"])


def test_submit_concurrency_reserves_only_the_upstream_submits(translated: dict[str, Any]) -> None:
    # Given the stack deployed with SubmitConcurrency=5
    # When every function's reserved concurrency is resolved
    reserved = reserved_concurrency(translated, SubmitConcurrency="5")
    # Then only the function making the paid upstream POSTs reserves, exactly 5: the HTTP
    # submit function (which only records the job) and the reconciler stay unreserved
    assert reserved == {"SubmitUpstreamFunction": 5}
