"""Settings: one validated model from the environment; a function's own settings are checked
before it does any work."""

from __future__ import annotations

import pytest

from imagegateway.domain.errors import ConfigurationError
from imagegateway.entrypoints.handlers import workflow_task
from imagegateway.platform.settings import Settings, get_settings
from local.aws.lambda_runtime import LambdaContext


def test_a_function_without_a_setting_it_requires_fails_at_once_naming_it(
    settings_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a workflow task that requires the state machine's ARN, deployed without it
    monkeypatch.delenv("STATE_MACHINE_ARN", raising=False)
    get_settings.cache_clear()
    called: list[object] = []
    entry = workflow_task(
        lambda ticket, deps: called.append(ticket), requires=("state_machine_arn",)
    )
    # When it is invoked
    with pytest.raises(ConfigurationError, match="STATE_MACHINE_ARN"):
        entry({"job_id": "j"}, LambdaContext(function_name="fn"))
    # Then it did no work at all
    assert called == []
    get_settings.cache_clear()


def test_a_misspelt_required_setting_is_an_error_not_a_pass() -> None:
    # Given settings, and a function that requires a setting by a misspelt name
    settings = Settings(jobs_table_name="jobs", images_bucket_name="images")
    with pytest.raises(AttributeError):
        settings.require("state_machine_arm")
    assert settings.require("jobs_table_name") is settings


def test_the_default_image_limit_takes_the_largest_picture_a_request_can_ask_for() -> None:
    # Given the largest sides a request takes, doubled by Hi-res Fix or a 2x upscale
    from imagegateway.domain.image_requests import MAX_SIDE

    side = 2 * MAX_SIDE
    # When it comes as an uncompressed RGBA PNG (a filter byte a row, 4 bytes a pixel)
    worst = side * (1 + 4 * side)
    # Then the store step's default limit still takes it
    assert Settings.model_fields["max_image_bytes"].default >= worst
