"""Each function names the settings it cannot work without, and the template gives them to it.

A function deployed without one of them fails on its first invocation, naming the variable
(`Settings.require`); this test catches the same drift before a deploy. Files only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from imagegateway.entrypoints.handlers import EntryPoint
from imagegateway.platform.settings import Settings
from local.aws.lambda_runtime import load_handler
from local.aws.template import load_template, resources_of_type

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template()
FUNCTIONS = {
    name: resource["Properties"]
    for name, resource in resources_of_type(TEMPLATE, "AWS::Serverless::Function").items()
}


def environment_of(properties: dict[str, Any]) -> set[str]:
    shared = TEMPLATE.get("Globals", {}).get("Function", {}).get("Environment", {})
    own = properties.get("Environment", {})
    return set(shared.get("Variables", {})) | set(own.get("Variables", {}))


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_the_template_gives_each_function_the_settings_it_requires(function: str) -> None:
    # Given the function's real entry point
    properties = FUNCTIONS[function]
    entry = load_handler(ROOT / properties["CodeUri"])
    assert isinstance(entry, EntryPoint)
    # Then every setting it requires is a Settings field, set in its environment
    assert set(entry.required_settings) <= Settings.model_fields.keys()
    required = {name.upper() for name in entry.required_settings}
    assert required <= environment_of(properties), function


def test_the_functions_that_start_or_send_jobs_require_their_own_settings() -> None:
    # The check is only as good as the declarations: the ones a missing value would break
    # part-way through a job are declared.
    declared = {
        Path(p["CodeUri"]).name: set(load_handler(ROOT / p["CodeUri"]).required_settings)
        for p in FUNCTIONS.values()
    }
    assert {"state_machine_arn", "idempotency_table_name"} <= declared["submit"]
    assert "upstream_api_key_secret_name" in declared["submit_upstream"]
    assert "state_machine_arn" in declared["reconciler"]
