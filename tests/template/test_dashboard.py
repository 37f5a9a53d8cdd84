"""The operators' dashboard (OperatorsDashboard): every chart reads a metric the code really emits,
or one AWS publishes for a resource of this stack, and it shows what an operator needs (jobs by
outcome and code, the detection delay, upstream calls, dead-letter queues, throttles, errors and
durations of every function, a cost per 1,000 jobs priced as the bench prices it).

These tests read files only: no network, no AWS account, no Docker.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.bench import bench_job_cost as prices
from tests.template.support import PLACEHOLDER, ROOT, render, resources_of_type

pytestmark = pytest.mark.usefixtures("no_network")

DASHBOARD_ID = "OperatorsDashboard"
PACKAGE = ROOT / "layers" / "common" / "imagegateway"

# The metrics AWS publishes that the dashboard may chart, per namespace: the dimension each is
# read by, and the template type (and attribute) that dimension's value must come from.
AWS_METRICS: dict[str, tuple[frozenset[str], str, str, str | None]] = {
    "AWS/Lambda": (
        frozenset({"Errors", "Throttles", "Duration", "Invocations"}),
        "FunctionName",
        "AWS::Serverless::Function",
        None,  # Ref: the function's name
    ),
    "AWS/SQS": (
        frozenset({"ApproximateNumberOfMessagesVisible"}),
        "QueueName",
        "AWS::SQS::Queue",
        "QueueName",  # a queue's Ref is its URL
    ),
    "AWS/States": (
        frozenset(
            {
                "ExecutionsStarted",
                "ExecutionsSucceeded",
                "ExecutionsFailed",
                "ExecutionsTimedOut",
                "ExecutionThrottled",
                "ExpressExecutionBilledDuration",
            }
        ),
        "StateMachineArn",
        "AWS::Serverless::StateMachine",
        None,  # Ref: its ARN
    ),
    "AWS/ApiGateway": (frozenset({"Count"}), "ApiId", "AWS::Serverless::HttpApi", None),
    "AWS/DynamoDB": (
        frozenset({"ConsumedWriteCapacityUnits", "ConsumedReadCapacityUnits"}),
        "TableName",
        "AWS::DynamoDB::Table",
        None,
    ),
}
# Metric math's own functions, not ids of the widget's metrics.
MATH_FUNCTIONS = {"FILL", "SEARCH", "SUM", "IF", "METRICS"}


@dataclass(frozen=True)
class Metric:
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]
    options: dict[str, Any] = field(hash=False, compare=False)


@dataclass
class Widget:
    title: str
    metrics: list[Metric]
    expressions: dict[str, str]  # id -> expression
    stat: str

    def ids(self) -> dict[str, Metric]:
        return {m.options["id"]: m for m in self.metrics if "id" in m.options}

    def of(self, namespace: str, name: str) -> list[Metric]:
        return [m for m in self.metrics if (m.namespace, m.name) == (namespace, name)]


def dashboard(template: dict[str, Any], workflow_type: str = "STANDARD") -> list[Widget]:
    """The dashboard's metric widgets, its body rendered as CloudFormation would (resources as
    <LogicalId> / <LogicalId.Attr>, the Step Functions price for that workflow type)."""
    text, variables = template["Resources"][DASHBOARD_ID]["Properties"]["DashboardBody"]["Fn::Sub"]

    def value(name: str) -> str:
        if name not in variables:
            return f"<{name}>"
        chosen = variables[name]
        if isinstance(chosen, dict) and "Fn::If" in chosen:
            condition, express, standard = chosen["Fn::If"]
            assert condition == "ExpressWorkflow"
            return str(express if workflow_type == "EXPRESS" else standard)
        return render(chosen)

    body = json.loads(PLACEHOLDER.sub(lambda found: value(found.group(1)), text))
    widgets = []
    for widget in body["widgets"]:
        if widget["type"] != "metric":
            continue
        properties = widget["properties"]
        metrics, expressions = [], {}
        for row in properties["metrics"]:
            if isinstance(row[0], dict):
                expressions[row[0]["id"]] = row[0]["expression"]
                continue
            options = row[-1] if isinstance(row[-1], dict) else {}
            plain = row[:-1] if options else row
            namespace, name, *pairs = plain
            assert len(pairs) % 2 == 0, row
            dimensions = tuple(zip(pairs[::2], pairs[1::2], strict=True))
            metrics.append(Metric(namespace, name, dimensions, options))
        widgets.append(Widget(properties["title"], metrics, expressions, properties["stat"]))
    return widgets


def widget(widgets: list[Widget], title_starts: str) -> Widget:
    (found,) = [w for w in widgets if w.title.startswith(title_starts)]
    return found


def emitted_by_the_code() -> dict[str, set[frozenset[str]]]:
    """Every custom metric the package emits, with the dimensions it adds beside `service`:
    `metrics.add_metric(name="X", ...)` (none) and `count_by("X", dimension=...)`."""
    found: dict[str, set[frozenset[str]]] = {}
    for path in PACKAGE.rglob("*.py"):
        source = path.read_text("utf-8")
        for name in re.findall(r'add_metric\(\s*name="(\w+)"', source):
            found.setdefault(name, set()).add(frozenset())
        for name, keywords in re.findall(r'count_by\(\s*"(\w+)"((?:\s*,\s*\w+=[^,)]+)*)\)', source):
            dimensions = frozenset(re.findall(r"(\w+)=", keywords))
            found.setdefault(name, set()).add(dimensions)
    return found


def powertools(template: dict[str, Any]) -> tuple[str, str]:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    return variables["POWERTOOLS_METRICS_NAMESPACE"], variables["POWERTOOLS_SERVICE_NAME"]


def searched(expression: str) -> Iterator[tuple[str, frozenset[str], str, dict[str, str]]]:
    """(namespace, dimensions, metric name, other filters) of each SEARCH in an expression."""
    for schema, terms in re.findall(r"SEARCH\('\{([^}]*)\}\s*([^']*)'", expression):
        namespace, *dimensions = schema.split(",")
        filters = dict(re.findall(r'(\w+)="([^"]*)"', terms))
        yield namespace, frozenset(dimensions), filters.pop("MetricName"), filters


def test_the_dashboard_is_in_the_template(template: dict[str, Any]) -> None:
    # Given the template's dashboards
    dashboards = resources_of_type(template, "AWS::CloudWatch::Dashboard")
    # Then there is the operators' one, named after the stack (names are per account)
    assert list(dashboards) == [DASHBOARD_ID]
    assert dashboards[DASHBOARD_ID]["Properties"]["DashboardName"] == {
        "Fn::Sub": "${AWS::StackName}-operators"
    }


@pytest.mark.parametrize("workflow_type", ["STANDARD", "EXPRESS"])
def test_every_custom_metric_charted_is_one_the_code_emits(
    template: dict[str, Any], workflow_type: str
) -> None:
    # Given the dashboard's custom metrics (plain and searched), and what the code emits
    namespace, service = powertools(template)
    emitted = emitted_by_the_code()
    widgets = dashboard(template, workflow_type)
    charted = [m for w in widgets for m in w.metrics if not m.namespace.startswith("AWS/")]
    searches = [found for w in widgets for e in w.expressions.values() for found in searched(e)]
    assert charted
    assert searches
    # When each is compared with the code
    for metric in charted:
        # Then it is under the namespace and service Powertools publishes with, and a metric
        # the code emits with no other dimension (a rename on either side would empty a chart)
        assert metric.namespace == namespace, metric
        assert metric.dimensions == (("service", service),), metric
        assert frozenset() in emitted.get(metric.name, set()), f"{metric.name}: not emitted"
    for searched_namespace, dimensions, name, filters in searches:
        # And a search names a metric emitted with exactly the dimensions it searches by
        assert searched_namespace == namespace
        assert filters == {"service": service}
        assert dimensions - {"service"} in emitted.get(name, set()), f"{name}: not emitted"


@pytest.mark.parametrize("workflow_type", ["STANDARD", "EXPRESS"])
def test_every_aws_metric_charted_is_published_for_a_resource_of_this_stack(
    template: dict[str, Any], workflow_type: str
) -> None:
    # Given the dashboard's AWS metrics
    charted = [
        m
        for w in dashboard(template, workflow_type)
        for m in w.metrics
        if m.namespace in AWS_METRICS
    ]
    others = {m.namespace for w in dashboard(template) for m in w.metrics} - set(AWS_METRICS)
    assert others == {powertools(template)[0]}
    for metric in charted:
        names, dimension, kind, attribute = AWS_METRICS[metric.namespace]
        # When its name and dimension are read
        ((dimension_name, value),) = metric.dimensions
        logical, _, attr = value.strip("<>").partition(".")
        # Then AWS publishes that metric by that dimension, for a resource of this stack of the
        # right type, named the way the dimension wants (a queue's name, not its URL)
        assert metric.name in names, metric
        assert dimension_name == dimension, metric
        assert template["Resources"][logical]["Type"] == kind, metric
        assert (attr or None) == attribute, metric


def _functions(template: dict[str, Any]) -> set[str]:
    return set(resources_of_type(template, "AWS::Serverless::Function"))


def _charted(widget: Widget, namespace: str, name: str, stat: str | None = None) -> set[str]:
    """The logical ids whose `name` the widget charts (with that statistic, if given)."""
    return {
        metric.dimensions[0][1].strip("<>").split(".")[0]
        for metric in widget.of(namespace, name)
        if stat is None or metric.options.get("stat", widget.stat) == stat
    }


def _dead_letter_queues(template: dict[str, Any]) -> set[str]:
    """Every queue that holds what failed: a redrive target (deadLetterTargetArn), a Lambda
    destination on failure (OnFailure), a rule's or a schedule's DeadLetterConfig."""
    found: set[str] = set()
    holders = {"deadLetterTargetArn", "OnFailure", "DeadLetterConfig"}

    def visit(node: Any, path: tuple[str, ...]) -> None:
        if isinstance(node, dict):
            target = node.get("Fn::GetAtt")
            resource = template["Resources"].get(target[0], {}) if target else {}
            if resource.get("Type") == "AWS::SQS::Queue" and holders & set(path[-2:]):
                found.add(target[0])
            for key, child in node.items():
                visit(child, (*path, key))
        elif isinstance(node, list):
            for child in node:
                visit(child, path)

    visit(template["Resources"], ())
    return found


def test_the_dashboard_shows_jobs_the_upstream_and_the_detection_delay(
    template: dict[str, Any],
) -> None:
    # Given the dashboard
    widgets = dashboard(template)
    namespace, _ = powertools(template)
    jobs = widget(widgets, "Jobs")
    by_code = widget(widgets, "Failed jobs by error code")
    delay = widget(widgets, "Detection delay")
    upstream = widget(widgets, "Upstream calls")
    # Then jobs are charted accepted, succeeded and failed, failures by their error code, the
    # detection delay at p50 and p95, and the upstream's submits and status calls
    assert {m.name for m in jobs.metrics} >= {"JobsAccepted", "JobsSucceeded", "JobsFailed"}
    assert [(name, dims) for _, dims, name, _ in searched(by_code.expressions["byCode"])] == [
        ("JobsFailedByCode", frozenset({"error_code", "service"}))
    ]
    assert sorted(m.options["stat"] for m in delay.of(namespace, "DetectionDelay")) == [
        "p50",
        "p95",
    ]
    assert {m.name for m in upstream.metrics} >= {"UpstreamSubmits", "UpstreamStatusChecks"}


def test_every_function_and_dead_letter_queue_is_watched(template: dict[str, Any]) -> None:
    # Given the dashboard, the stack's functions and its dead-letter queues
    widgets = dashboard(template)
    functions = _functions(template)
    queues = _dead_letter_queues(template)
    assert queues == {"RequestDeadLetterQueue", "WebhookDeadLetterQueue", "ReconcilerFailureQueue"}
    # Then every dead-letter queue's depth is charted, and every function's throttles, errors
    # and p95 duration (a new function or queue must join them)
    depths = widget(widgets, "Dead-letter queues")
    assert _charted(depths, "AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum") == queues
    assert _charted(widget(widgets, "Throttles"), "AWS/Lambda", "Throttles", "Sum") == functions
    assert _charted(widget(widgets, "Throttles"), "AWS/States", "ExecutionThrottled") == {
        "ImageJobStateMachine"
    }
    assert _charted(widget(widgets, "Lambda errors"), "AWS/Lambda", "Errors", "Sum") == functions
    durations = widget(widgets, "Lambda duration")
    assert _charted(durations, "AWS/Lambda", "Duration", "p95") == functions


def _number(expression: str, pattern: str) -> float:
    found = re.search(pattern, expression)
    assert found, f"{pattern!r} not in {expression!r}"
    return float(found.group(1))


def test_the_cost_line_prices_every_function_at_its_memory_and_the_benchs_prices(
    template: dict[str, Any],
) -> None:
    # Given the cost widget (STANDARD, the default)
    cost = widget(dashboard(template), "AWS cost per 1,000 jobs")
    ids = cost.ids()
    memory = template["Globals"]["Function"]["MemorySize"]
    functions = resources_of_type(template, "AWS::Serverless::Function")

    def function_of(metric_id: str) -> str:
        return ids[metric_id].dimensions[0][1].strip("<>")

    # When its Lambda terms are read
    seconds = dict(re.findall(r"FILL\((\w+),0\)\*(\d+)", cost.expressions["lambdaGbS"]))
    requests = re.findall(r"FILL\((\w+),0\)", cost.expressions["lambdaReq"])
    # Then every function's duration is weighed by its own memory, and its invocations counted
    assert {function_of(i) for i in seconds} == set(functions)
    for metric_id, megabytes in seconds.items():
        function = functions[function_of(metric_id)]
        assert ids[metric_id].name == "Duration"
        assert int(megabytes) == function["Properties"].get("MemorySize", memory), metric_id
    assert {function_of(i) for i in requests} == set(functions)
    assert {ids[i].name for i in requests} == {"Invocations"}
    assert "/ 1024000" in cost.expressions["lambdaGbS"]  # ms x MB -> s x GB
    # And each price is the bench's list price (tests/bench/bench_job_cost.py)
    lambda_usd = cost.expressions["lambdaUsd"]
    assert _number(lambda_usd, r"lambdaGbS \* ([\d.]+)") == pytest.approx(
        prices.LAMBDA_PER_GB_SECOND
    )
    assert _number(lambda_usd, r"lambdaReq \* ([\d.]+)") == pytest.approx(prices.LAMBDA_PER_REQUEST)
    api = cost.expressions["apiUsd"]
    assert {function_of(i) for i in re.findall(r"FILL\((\w+),0\)", api)} == {
        "HttpApi",
        "KeyedHttpApi",
    }
    assert _number(api, r"\* ([\d.]+)$") == pytest.approx(prices.API_PER_REQUEST)
    ddb = cost.expressions["ddbUsd"]
    writes, reads = re.findall(r"\(([^()]*(?:\([^()]*\)[^()]*)*)\) \* ([\d.]+)", ddb)
    tables = set(resources_of_type(template, "AWS::DynamoDB::Table"))
    for (terms, price), metric, expected in (
        (writes, "ConsumedWriteCapacityUnits", prices.DDB_PER_WRU),
        (reads, "ConsumedReadCapacityUnits", prices.DDB_PER_RRU),
    ):
        charted = re.findall(r"FILL\((\w+),0\)", terms)
        assert {ids[i].name for i in charted} == {metric}
        assert {function_of(i) for i in charted} == tables
        assert float(price) == pytest.approx(expected)
    # And the line divides by every job: those sent upstream and those served from the cache
    per_1000 = cost.expressions["costPer1000"]
    dollars = r"1000 \* \(lambdaUsd \+ sfnUsd \+ apiUsd \+ ddbUsd\)"
    assert re.fullmatch(dollars + r" / \(FILL\((\w+),0\) \+ FILL\((\w+),0\)\)", per_1000)
    divisors = re.findall(r"FILL\((\w+),0\)", per_1000)
    assert {ids[i].name for i in divisors} == {"JobsAccepted", "ResultCacheHits"}


def test_the_cost_line_prices_step_functions_by_the_workflow_type(
    template: dict[str, Any],
) -> None:
    # Given the cost widget for each workflow type
    standard = widget(dashboard(template, "STANDARD"), "AWS cost per 1,000 jobs")
    express = widget(dashboard(template, "EXPRESS"), "AWS cost per 1,000 jobs")
    ids = standard.ids()
    # Then STANDARD pays transitions: 4 per execution and 3 per status check invocation, at
    # the bench's price
    assert re.fullmatch(
        r"\(4 \* FILL\(sfnStarted,0\) \+ 3 \* FILL\((\w+),0\)\) \* ([\d.]+)",
        standard.expressions["sfnUsd"],
    )
    check = re.findall(r"3 \* FILL\((\w+),0\)", standard.expressions["sfnUsd"])[0]
    assert (ids[check].name, ids[check].dimensions[0][1]) == (
        "Invocations",
        "<CheckUpstreamFunction>",
    )
    assert ids["sfnStarted"].name == "ExecutionsStarted"
    assert _number(standard.expressions["sfnUsd"], r"\* ([\d.]+)$") == pytest.approx(
        prices.SFN_PER_TRANSITION
    )
    # And EXPRESS pays requests and 64 MB of billed duration, at the bench's prices
    sfn = express.expressions["sfnUsd"]
    assert _number(sfn, r"FILL\(sfnStarted,0\) \* ([\d.]+)") == pytest.approx(
        prices.EXPRESS_PER_REQUEST
    )
    assert _number(sfn, r"/ 1000 \* ([\d.]+) \*") == pytest.approx(prices.EXPRESS_MEMORY_GB)
    assert _number(sfn, r"\* ([\d.]+)$") == pytest.approx(prices.EXPRESS_PER_GB_SECOND)
    assert ids["sfnBilledMs"].name == "ExpressExecutionBilledDuration"


def test_every_expression_refers_to_metrics_of_its_own_widget(template: dict[str, Any]) -> None:
    # Given every widget's expressions
    for shown in dashboard(template):
        known = set(shown.ids()) | set(shown.expressions)
        for expression_id, expression in shown.expressions.items():
            # When the names an expression uses are read (strings and numbers aside)
            bare = re.sub(r"'[^']*'", "", expression)
            names = set(re.findall(r"\b([A-Za-z]\w*)\b", bare)) - MATH_FUNCTIONS
            # Then each is a metric or another expression of the same widget
            assert names <= known - {expression_id}, (shown.title, expression_id, names - known)
