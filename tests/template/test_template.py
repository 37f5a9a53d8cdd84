"""The SAM template and the ASL it deploys: lint-clean, translatable offline, coherent.

These tests read files only: no network, no AWS account, no Docker.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import pytest_socket
import yaml
from cfnlint.api import lint, lint_file
from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import intrinsics_multi_constructor

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
ASL = ROOT / "statemachine" / "image_job.asl.json"

STATE_MACHINE_ID = "ImageJobStateMachine"
LAMBDA_SERVICE_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}
# Names the handlers and the layer are written against (see DESIGN.md / the brief).
CONTRACT_RESOURCES = {
    "CommonLayer": "AWS::Serverless::LayerVersion",
    "HttpApi": "AWS::Serverless::HttpApi",
    "SubmitFunction": "AWS::Serverless::Function",
    "JobsFunction": "AWS::Serverless::Function",
    "CheckStatusFunction": "AWS::Serverless::Function",
    "StoreImagesFunction": "AWS::Serverless::Function",
    "RecordFailureFunction": "AWS::Serverless::Function",
    "ImageJobStateMachine": "AWS::Serverless::StateMachine",
    "JobsTable": "AWS::DynamoDB::Table",
    "ImagesBucket": "AWS::S3::Bucket",
    "ImagesBucketPolicy": "AWS::S3::BucketPolicy",
    "UpstreamApiKeySecret": "AWS::SecretsManager::Secret",
}
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
PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")


# ---------------------------------------------------------------- helpers


class _CfnLoader(yaml.SafeLoader):
    """A SafeLoader that reads CloudFormation short-form tags (!Ref, !GetAtt, ...)."""


_CfnLoader.add_multi_constructor("!", intrinsics_multi_constructor)


def load_template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506


def load_asl() -> dict[str, Any]:
    return json.loads(ASL.read_text(encoding="utf-8"))


def resources_of_type(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


def errors_and_warnings(matches: list[Any]) -> list[str]:
    return [str(m) for m in matches if m.rule.id[0] in "EW"]


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


def iter_statements(node: Any) -> Iterator[dict[str, Any]]:
    """Every IAM-style policy statement anywhere under node (roles, policies, bucket policies)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Statement":
                statements = value if isinstance(value, list) else [value]
                yield from (s for s in statements if isinstance(s, dict))
            else:
                yield from iter_statements(value)
    elif isinstance(node, list):
        for item in node:
            yield from iter_statements(item)


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _local_path_to_s3(uri: str) -> str:
    return f"s3://artifacts-bucket/{uri.strip('/').replace('/', '-')}.zip"


def prepare_for_offline_transform(template: dict[str, Any]) -> dict[str, Any]:
    """What `sam package` would do: code to S3 URIs; the ASL inlined so it can be checked."""
    prepared = copy.deepcopy(template)
    for resource in prepared["Resources"].values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            props["CodeUri"] = _local_path_to_s3(props["CodeUri"])
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            props["ContentUri"] = _local_path_to_s3(props["ContentUri"])
        elif resource["Type"] == "AWS::Serverless::StateMachine":
            uri = props.pop("DefinitionUri")
            props["Definition"] = json.loads((ROOT / uri).read_text(encoding="utf-8"))
    return prepared


def flatten_definition_strings(cfn: dict[str, Any]) -> None:
    """SAM emits DefinitionString as a readable Fn::Join of lines; cfn-lint skips intrinsics.

    Joining it back into a plain JSON string lets cfn-lint's E3601 schema-check the ASL.
    """
    for resource in resources_of_type(cfn, "AWS::StepFunctions::StateMachine").values():
        definition = resource["Properties"]["DefinitionString"]
        if isinstance(definition, dict) and "Fn::Join" in definition:
            separator, parts = definition["Fn::Join"]
            assert all(isinstance(p, str) for p in parts), "unexpected intrinsic in the ASL"
            resource["Properties"]["DefinitionString"] = separator.join(parts)


# ---------------------------------------------------------------- fixtures


@contextmanager
def sockets_blocked() -> Iterator[None]:
    pytest_socket.disable_socket(allow_unix_socket=True)
    try:
        yield
    finally:
        pytest_socket.enable_socket()


@pytest.fixture(autouse=True)
def no_network() -> Iterator[None]:
    # Function-scoped, so it starts after the suite-wide autouse fixtures (which may open
    # a local UDP socket for the X-Ray emitter); module fixtures block sockets themselves.
    with sockets_blocked():
        yield


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def asl() -> dict[str, Any]:
    return load_asl()


@pytest.fixture(scope="module")
def translated(template: dict[str, Any]) -> dict[str, Any]:
    """The template as CloudFormation would receive it, translated offline."""
    # The managed-policy loader would call IAM; no policy here is named, so an empty map.
    loader = mock.create_autospec(ManagedPolicyLoader, instance=True)
    loader.load.return_value = {}
    with sockets_blocked(), pytest.MonkeyPatch.context() as mp:
        # samtranslator reads the region from a boto3 session (no call is made).
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.delenv("AWS_PROFILE", raising=False)
        cfn = transform(prepare_for_offline_transform(template), {}, loader)
    flatten_definition_strings(cfn)
    return cfn


# ---------------------------------------------------------------- lint


def test_template_lints_clean() -> None:
    # Given the SAM template as written
    # When cfn-lint checks it (with its own SAM transform)
    matches = lint_file(TEMPLATE)
    # Then there is no error and no warning
    assert errors_and_warnings(matches) == []


def test_translated_template_lints_clean_including_the_asl(translated: dict[str, Any]) -> None:
    # Given the template translated offline, with the ASL inlined as a plain DefinitionString
    definition = translated["Resources"][STATE_MACHINE_ID]["Properties"]["DefinitionString"]
    assert isinstance(definition, str)
    # When cfn-lint checks the plain CloudFormation (E3601 schema-checks the ASL)
    matches = lint(json.dumps(translated))
    # Then there is no error and no warning
    assert errors_and_warnings(matches) == []


def test_the_asl_schema_check_really_runs(translated: dict[str, Any]) -> None:
    # Given the translated template with an invalid field slipped into one ASL state
    broken = copy.deepcopy(translated)
    props = broken["Resources"][STATE_MACHINE_ID]["Properties"]
    definition = json.loads(props["DefinitionString"])
    first_state = definition["StartAt"]
    definition["States"][first_state]["NotAnAslField"] = True
    props["DefinitionString"] = json.dumps(definition)
    # When cfn-lint checks it
    matches = lint(json.dumps(broken))
    # Then the ASL schema rule reports it (so the clean result above means something)
    assert any(m.rule.id == "E3601" and "NotAnAslField" in str(m) for m in matches)


# ---------------------------------------------------------------- contract


def test_contract_resources_exist_with_their_types(template: dict[str, Any]) -> None:
    # Given the logical ids the code and the other parts are written against
    # When the template's resources are listed
    actual = {k: template["Resources"].get(k, {}).get("Type") for k in CONTRACT_RESOURCES}
    # Then every one exists with the expected type
    assert actual == CONTRACT_RESOURCES


def test_every_function_gets_the_contract_environment(translated: dict[str, Any]) -> None:
    # Given the translated Lambda functions
    functions = resources_of_type(translated, "AWS::Lambda::Function")
    assert len(functions) == 5
    for name, function in functions.items():
        # When their environment variables are read
        variables = function["Properties"]["Environment"]["Variables"]
        # Then every contract variable is set, and the runtime is the arm64 python3.12 one
        assert variables.keys() >= CONTRACT_ENV, name
        assert function["Properties"]["Runtime"] == "python3.12", name
        assert function["Properties"]["Architectures"] == ["arm64"], name
        assert function["Properties"]["TracingConfig"] == {"Mode": "Active"}, name
    assert functions["SubmitFunction"]["Properties"]["Environment"]["Variables"][
        "STATE_MACHINE_ARN"
    ] == {"Ref": STATE_MACHINE_ID}


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
        }
        # Then it defines the handler function at module level
        if attribute not in defined:
            missing.append(f"{name}: {attribute} not defined in {source.relative_to(ROOT)}")
    assert missing == []


def test_the_layer_holds_the_shared_package(template: dict[str, Any]) -> None:
    # Given the layer's content directory
    content = ROOT / template["Resources"]["CommonLayer"]["Properties"]["ContentUri"]
    # When it is listed / Then it has the package and the requirements the build installs
    assert (content / "imagegateway" / "__init__.py").is_file()
    assert (content / "requirements.txt").is_file()


def test_every_route_requires_iam_auth(translated: dict[str, Any]) -> None:
    # Given the HTTP API's generated OpenAPI body
    body = translated["Resources"]["HttpApi"]["Properties"]["Body"]
    routes = {
        f"{method.upper()} {path}": operation
        for path, operations in body["paths"].items()
        for method, operation in operations.items()
    }
    # When the routes are listed
    # Then they are exactly the two public ones, both IAM (SigV4) protected
    assert set(routes) == {"POST /sd/text2image/v1", "GET /sd/text2image/v1/status/{id}"}
    for route, operation in routes.items():
        assert operation.get("security") == [{"AWS_IAM": []}], route


def test_access_log_format_is_json_with_the_useful_fields(translated: dict[str, Any]) -> None:
    # Given the HTTP API stage
    stages = resources_of_type(translated, "AWS::ApiGatewayV2::Stage")
    assert len(stages) == 1
    settings = next(iter(stages.values()))["Properties"]["AccessLogSettings"]
    # When its access log format is parsed
    fields = json.loads(settings["Format"])
    # Then it is JSON carrying what an operator needs to trace a request
    assert {"requestId", "ip", "caller", "routeKey", "status", "integrationError"} <= fields.keys()


def test_bucket_is_private_encrypted_and_tls_only(template: dict[str, Any]) -> None:
    # Given the images bucket and its policy
    bucket = template["Resources"]["ImagesBucket"]["Properties"]
    policy = template["Resources"]["ImagesBucketPolicy"]["Properties"]["PolicyDocument"]
    # When their settings are read / Then no public access, SSE, and plain HTTP is denied
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert any(
        s["Effect"] == "Deny"
        and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
        for s in policy["Statement"]
    )


def test_no_allow_statement_grants_a_wildcard_action(translated: dict[str, Any]) -> None:
    # Given every policy statement in the translated template
    statements = list(iter_statements(translated["Resources"]))
    assert statements
    # When the Allow statements' actions are inspected
    offending = [
        s
        for s in statements
        if s.get("Effect", "Allow") == "Allow"
        and (
            "NotAction" in s
            or any(
                isinstance(a, str) and (a == "*" or a.endswith(":*"))
                for a in as_list(s.get("Action", []))
            )
        )
    ]
    # Then none grants "*" or "service:*" (the TLS-only Deny on s3:* is the only wildcard)
    assert offending == []


# ---------------------------------------------------------------- the ASL


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
        assert task.get("Catch"), name


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
        policy["LambdaInvokePolicy"]["FunctionName"]["Ref"]
        for policy in props["Policies"]
        if isinstance(policy, dict) and "LambdaInvokePolicy" in policy
    }
    for key, value in props["DefinitionSubstitutions"].items():
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
