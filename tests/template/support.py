"""What the template tests share: the files they read (template.yaml, the ASL), the names the
code is written against, and helpers to read, resolve and translate the template offline.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import yaml
from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import intrinsics_multi_constructor

ROOT = Path(__file__).resolve().parents[2]


TEMPLATE = ROOT / "template.yaml"


ASL = ROOT / "statemachine" / "image_job.asl.json"


STATE_MACHINE_ID = "ImageJobStateMachine"


# Names the handlers and the layer are written against (see DESIGN.md / the brief).
CONTRACT_RESOURCES = {
    "CommonLayer": "AWS::Serverless::LayerVersion",
    "HttpApi": "AWS::Serverless::HttpApi",
    "SubmitFunction": "AWS::Serverless::Function",
    "JobStatusFunction": "AWS::Serverless::Function",
    "SubmitUpstreamFunction": "AWS::Serverless::Function",
    "CheckUpstreamFunction": "AWS::Serverless::Function",
    "StoreImagesFunction": "AWS::Serverless::Function",
    "RecordFailureFunction": "AWS::Serverless::Function",
    "ReconcilerFunction": "AWS::Serverless::Function",
    "IntakeFunction": "AWS::Serverless::Function",
    "DeliverWebhookFunction": "AWS::Serverless::Function",
    "AuthorizerFunction": "AWS::Serverless::Function",
    "KeyedHttpApi": "AWS::Serverless::HttpApi",
    "ApiKeysTable": "AWS::DynamoDB::Table",
    "EventBus": "AWS::Events::EventBus",
    "ImageRequestedRule": "AWS::Events::Rule",
    "RequestQueue": "AWS::SQS::Queue",
    "RequestDeadLetterQueue": "AWS::SQS::Queue",
    "WebhookQueue": "AWS::SQS::Queue",
    "WebhookDeadLetterQueue": "AWS::SQS::Queue",
    "WebhookSigningSecret": "AWS::SecretsManager::Secret",
    "ImageJobStateMachine": "AWS::Serverless::StateMachine",
    "JobsTable": "AWS::DynamoDB::Table",
    "IdempotencyTable": "AWS::DynamoDB::Table",
    "ImagesBucket": "AWS::S3::Bucket",
    "ImagesBucketPolicy": "AWS::S3::BucketPolicy",
    "UpstreamApiKeySecret": "AWS::SecretsManager::Secret",
}


PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")


class _CfnLoader(yaml.SafeLoader):
    """A SafeLoader that reads CloudFormation short-form tags (!Ref, !GetAtt, ...)."""


_CfnLoader.add_multi_constructor("!", intrinsics_multi_constructor)


def load_template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506


def load_asl() -> dict[str, Any]:
    return json.loads(ASL.read_text(encoding="utf-8"))


def resources_of_type(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


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


def render(value: Any) -> str:
    """An IAM resource as readable text: intrinsics become <LogicalId> / <LogicalId.Attr>."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Ref":
            return f"<{argument}>"
        if function == "Fn::GetAtt":
            parts = argument if isinstance(argument, list) else argument.split(".", 1)
            return f"<{'.'.join(parts)}>"
        if function == "Fn::Sub":
            text, variables = (argument, {}) if isinstance(argument, str) else argument
            return PLACEHOLDER.sub(
                lambda m: (
                    render(variables[m.group(1)]) if m.group(1) in variables else f"<{m.group(1)}>"
                ),
                text,
            )
    raise AssertionError(f"cannot render {value!r}")


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


def translate_offline(template: dict[str, Any]) -> dict[str, Any]:
    """The template as CloudFormation would receive it, translated by SAM here (no AWS call)."""
    # The managed-policy loader would call IAM; no policy here is named, so an empty map.
    loader = mock.create_autospec(ManagedPolicyLoader, instance=True)
    loader.load.return_value = {}
    # samtranslator reads the region from a boto3 session (no call is made).
    with mock.patch.dict(os.environ, {"AWS_DEFAULT_REGION": "us-east-1"}):
        os.environ.pop("AWS_PROFILE", None)  # restored on leaving, like every other change
        translated: dict[str, Any] = transform(prepare_for_offline_transform(template), {}, loader)
    return translated


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


class _NoValue:
    """AWS::NoValue: the property it is given to is removed."""


NO_VALUE = _NoValue()


def resolve(node: Any, template: dict[str, Any], **overrides: str) -> Any:
    """node as CloudFormation would deploy it with these parameter values (the defaults
    otherwise): Fn::If / Fn::Equals / Fn::Not / Fn::And / Fn::Or and Condition evaluated,
    parameters substituted, AWS::NoValue removed. Resource refs and other intrinsics stay."""
    unknown = overrides.keys() - template["Parameters"].keys()
    assert not unknown, f"no such parameter: {unknown}"
    # CloudFormation hands every parameter value over as a string.
    parameters = {
        name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()
    } | overrides

    def condition(name: str) -> bool:
        value = walk(template["Conditions"][name])
        assert isinstance(value, bool), (name, value)
        return value

    def walk(value: Any) -> Any:
        if isinstance(value, list):
            return [item for item in map(walk, value) if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((function, argument),) = value.items()
            if function == "Ref" and argument == "AWS::NoValue":
                return NO_VALUE
            if function == "Ref" and argument in parameters:
                return parameters[argument]
            if function == "Condition":
                return condition(argument)
            if function == "Fn::If":
                name, if_true, if_false = argument
                return walk(if_true if condition(name) else if_false)
            if function == "Fn::Equals":
                left, right = (walk(item) for item in argument)
                return str(left) == str(right)
            if function == "Fn::Not":
                (operand,) = argument
                return not walk(operand)
            if function == "Fn::And":
                return all(walk(item) for item in argument)
            if function == "Fn::Or":
                return any(walk(item) for item in argument)
        walked = {key: walk(item) for key, item in value.items()}
        return {key: item for key, item in walked.items() if item is not NO_VALUE}

    return walk(node)
