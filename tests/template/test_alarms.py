"""The alarms: workflow failures, unexpected Lambda errors, the operational alarms and their
metrics, the optional notification topic.

These tests read files only: no network, no AWS account, no Docker.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.template.support import ROOT, STATE_MACHINE_ID, render, resolve, resources_of_type

pytestmark = pytest.mark.usefixtures("no_network")


# Functions whose every Lambda error is unexpected, so one error raises an alarm.
ERROR_ALARMED_FUNCTIONS = {
    "SubmitFunction",
    "JobStatusFunction",
    "RecordFailureFunction",
    "ReconcilerFunction",
    # Queue consumers report what failed as batch item failures; an error is a crash.
    "IntakeFunction",
    "DeliverWebhookFunction",
    # A refused key is an answer, not an error: an error locks keyed callers out.
    "AuthorizerFunction",
}


# The workflow's task functions raise on purpose (their error names drive the ASL's Retry and
# Catch), so single errors are expected: WorkflowStepErrorsAlarm watches a stream of them, and
# an execution that fails for good raises StateMachineFailedAlarm.
WORKFLOW_STEP_FUNCTIONS = {
    "SubmitUpstreamFunction",
    "CheckUpstreamFunction",
    "StoreImagesFunction",
}


# The operational alarms: the (namespace, metric name, dimension name) each watches, the
# dimension values (several: a metric-math sum, one metric each), and its trigger.
OPERATIONAL_ALARMS: dict[str, dict[str, Any]] = {
    "SubmitThrottlesAlarm": {
        "metric": ("AWS/Lambda", "Throttles", "FunctionName"),
        "values": {"<SubmitFunction>", "<SubmitUpstreamFunction>"},
        "trigger": ("GreaterThanThreshold", 0),  # one throttle is enough
    },
    "Api5xxAlarm": {
        "metric": ("AWS/ApiGateway", "5xx", "ApiId"),
        "values": {"<HttpApi>"},
        "trigger": ("GreaterThanOrEqualToThreshold", 5),
    },
    "UpstreamSubmitErrorsAlarm": {
        # The custom metric submit_upstream emits (Powertools: namespace and `service`
        # dimension from the POWERTOOLS_* variables); checked against both below.
        "metric": ("ImagepipelineGateway", "UpstreamSubmitErrors", "service"),
        "values": {"imagepipeline-gateway"},
        "trigger": ("GreaterThanThreshold", 0),
    },
    "WorkflowNotStartedAlarm": {
        # A submit whose execution Step Functions refused (start_job emits it): on a first
        # deploy, a role without states:StartExecution makes every job fail this way.
        "metric": ("ImagepipelineGateway", "JobsNotStarted", "service"),
        "values": {"imagepipeline-gateway"},
        "trigger": ("GreaterThanThreshold", 0),
    },
    "WorkflowStepErrorsAlarm": {
        "metric": ("AWS/Lambda", "Errors", "FunctionName"),
        "values": {f"<{name}>" for name in WORKFLOW_STEP_FUNCTIONS},
        "trigger": ("GreaterThanOrEqualToThreshold", 10),
    },
}


def alarm_metrics(alarm: dict[str, Any]) -> set[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """(namespace, metric name, dimensions) of every metric an alarm evaluates: its single
    metric, or every metric its math expression sums (each summed exactly once, as a Sum)."""
    if "Metrics" not in alarm:
        dimensions = tuple((d["Name"], render(d["Value"])) for d in alarm.get("Dimensions", []))
        return {(alarm["Namespace"], alarm["MetricName"], dimensions)}
    assert not {"Namespace", "MetricName", "Dimensions", "Statistic"} & alarm.keys(), alarm
    returned = [m for m in alarm["Metrics"] if m.get("ReturnData", True)]
    stats = {m["Id"]: m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert len(returned) == 1, "one expression decides the alarm"
    assert "MetricStat" not in returned[0]
    terms = re.fullmatch(r"\s*(\w+(?:\s*\+\s*\w+)*)\s*", returned[0]["Expression"])
    assert terms, f"not a plain sum: {returned[0]['Expression']!r}"
    summed = re.split(r"\s*\+\s*", terms.group(1))
    assert sorted(summed) == sorted(stats), "the sum must take every metric exactly once"
    assert len(stats) == len(alarm["Metrics"]) - 1, "no other expressions"
    found = set()
    for stat in stats.values():
        assert stat["Stat"] == "Sum", stat
        metric = stat["Metric"]
        dimensions = tuple((d["Name"], render(d["Value"])) for d in metric.get("Dimensions", []))
        found.add((metric["Namespace"], metric["MetricName"], dimensions))
    assert len({stat["Period"] for stat in stats.values()}) == 1, "one period for every term"
    return found


def _alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: alarm["Properties"]
        for name, alarm in resources_of_type(template, "AWS::CloudWatch::Alarm").items()
    }


def _single_metric_alarms(template: dict[str, Any]) -> list[dict[str, Any]]:
    """The alarms on one metric (metric-math alarms have no Namespace of their own)."""
    return [alarm for alarm in _alarms(template).values() if "Metrics" not in alarm]


def test_state_machine_failures_and_timeouts_raise_alarms(template: dict[str, Any]) -> None:
    # Given the alarms on the state machine's metrics
    watched = {
        alarm["MetricName"]
        for alarm in _single_metric_alarms(template)
        if alarm["Namespace"] == "AWS/States"
        and alarm["Dimensions"] == [{"Name": "StateMachineArn", "Value": {"Ref": STATE_MACHINE_ID}}]
        and alarm["ComparisonOperator"] == "GreaterThanThreshold"
        and alarm["Threshold"] == 0
    }
    # When they are listed / Then one failed or timed-out execution is enough
    assert watched >= {"ExecutionsFailed", "ExecutionsTimedOut"}


def test_unexpected_lambda_errors_raise_alarms(template: dict[str, Any]) -> None:
    # Given the alarms on one function's Lambda Errors metric
    watched = {
        alarm["Dimensions"][0]["Value"]["Ref"]
        for alarm in _single_metric_alarms(template)
        if alarm["Namespace"] == "AWS/Lambda"
        and alarm["MetricName"] == "Errors"
        and alarm["Dimensions"][0]["Name"] == "FunctionName"
        and alarm["ComparisonOperator"] == "GreaterThanThreshold"
        and alarm["Threshold"] == 0
    }
    # When they are listed / Then every function whose errors are never expected is watched,
    # and one error is enough
    assert watched == ERROR_ALARMED_FUNCTIONS


def test_every_function_has_its_errors_watched(template: dict[str, Any]) -> None:
    # Given every function, and every alarm on Lambda's Errors metric (single or summed)
    functions = set(resources_of_type(template, "AWS::Serverless::Function"))
    watched = {
        value.strip("<>")
        for alarm in _alarms(template).values()
        for namespace, metric, dimensions in alarm_metrics(alarm)
        if (namespace, metric) == ("AWS/Lambda", "Errors")
        for name, value in dimensions
        if name == "FunctionName"
    }
    # When they are compared / Then no function's errors go unseen, a new one included, and
    # the two kinds split them: one-error alarms, or the workflow steps' summed alarm
    assert watched == functions
    assert functions == ERROR_ALARMED_FUNCTIONS | WORKFLOW_STEP_FUNCTIONS
    assert not ERROR_ALARMED_FUNCTIONS & WORKFLOW_STEP_FUNCTIONS


@pytest.mark.parametrize("alarm_id", sorted(OPERATIONAL_ALARMS))
def test_operational_alarm_watches_its_metric(template: dict[str, Any], alarm_id: str) -> None:
    # Given one of the operational alarms and what it should watch
    expected = OPERATIONAL_ALARMS[alarm_id]
    namespace, metric, dimension = expected["metric"]
    alarm = _alarms(template).get(alarm_id)
    assert alarm is not None, f"{alarm_id} is missing"
    # When the metrics it evaluates are collected (a metric-math alarm's every summed term)
    watched = alarm_metrics(alarm)
    # Then it watches exactly that metric, of exactly those functions / that API / service
    assert watched == {(namespace, metric, ((dimension, value),)) for value in expected["values"]}
    # And it fires on the intended threshold, once per 5-minute period
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == expected["trigger"]
    assert alarm["EvaluationPeriods"] == 1
    periods = {m["MetricStat"]["Period"] for m in alarm.get("Metrics", []) if "MetricStat" in m}
    assert periods | ({alarm["Period"]} if "Period" in alarm else set()) == {300}


def test_workflow_not_started_alarm_watches_what_start_job_emits(
    translated: dict[str, Any],
) -> None:
    # Given the alarm, and the submit function's Powertools environment and use case
    alarm = _alarms(translated)["WorkflowNotStartedAlarm"]
    variables = translated["Resources"]["SubmitFunction"]["Properties"]["Environment"]["Variables"]
    source = (ROOT / "layers" / "common" / "imagegateway" / "use_cases" / "start_job.py").read_text(
        "utf-8"
    )
    # When its metric is compared with them / Then it is one the submit path really emits
    ((namespace, metric, dimensions),) = alarm_metrics(alarm)
    assert namespace == variables["POWERTOOLS_METRICS_NAMESPACE"]
    assert dimensions == (("service", variables["POWERTOOLS_SERVICE_NAME"]),)
    assert f'add_metric(name="{metric}"' in source


def test_upstream_submit_errors_alarm_matches_what_the_code_emits(
    translated: dict[str, Any],
) -> None:
    # Given the alarm on the custom metric, the environment Powertools Metrics reads in the
    # function that emits it, and that function's source
    alarm = _alarms(translated)["UpstreamSubmitErrorsAlarm"]
    env = translated["Resources"]["SubmitUpstreamFunction"]["Properties"]["Environment"]
    variables = env["Variables"]
    source = (
        ROOT / "layers" / "common" / "imagegateway" / "use_cases" / "steps" / "send_job.py"
    ).read_text("utf-8")
    submit_upstream = re.search(r"^def send_job\(.*?(?=^def )", source, re.M | re.S)
    assert submit_upstream
    # When the alarm's metric is compared with them
    ((namespace, metric, dimensions),) = alarm_metrics(alarm)
    # Then it is the namespace and `service` dimension Powertools publishes under, and a
    # metric submit_upstream really emits (a rename on either side would silence the alarm)
    assert namespace == variables["POWERTOOLS_METRICS_NAMESPACE"]
    assert dimensions == (("service", variables["POWERTOOLS_SERVICE_NAME"]),)
    assert f'add_metric(name="{metric}"' in submit_upstream.group(0)


@pytest.mark.parametrize("alarm_id", sorted(OPERATIONAL_ALARMS))
def test_operational_alarm_notifies_the_topic_when_given(
    template: dict[str, Any], alarm_id: str
) -> None:
    # Given one of the operational alarms and a topic ARN
    alarm = template["Resources"][alarm_id]
    topic = "arn:aws:sns:us-east-1:123456789012:operators"
    # When it is deployed with that topic, and without one (the default)
    with_topic = resolve(alarm, template, AlarmTopicArn=topic)["Properties"]
    without_topic = resolve(alarm, template)["Properties"]
    # Then it notifies the topic on alarm and on recovery, and nothing when none is given
    assert (with_topic["AlarmActions"], with_topic["OKActions"]) == ([topic], [topic])
    assert "AlarmActions" not in without_topic
    assert "OKActions" not in without_topic
    assert with_topic.get("ActionsEnabled", True) is True


def test_alarms_notify_the_optional_topic(template: dict[str, Any]) -> None:
    # Given the optional topic parameter and its condition
    assert template["Parameters"]["AlarmTopicArn"]["Default"] == ""
    assert template["Conditions"]["HasAlarmTopic"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]
    }
    expected = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    alarms = _alarms(template)
    assert alarms.keys() >= OPERATIONAL_ALARMS.keys()
    for name, alarm in alarms.items():
        # When an alarm's actions are read / Then they go to the topic, when there is one
        assert alarm["AlarmActions"] == expected, name
        assert alarm["OKActions"] == expected, name
        # And no traffic (missing data) is not a breach
        assert alarm["TreatMissingData"] == "notBreaching", name
