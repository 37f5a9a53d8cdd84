"""domain.errors: FailureCode is the one source, and its members still act as strings."""

from __future__ import annotations

import json

from imagegateway.domain import errors
from imagegateway.domain.errors import FailureCode


def test_failure_codes_behave_as_the_plain_strings_they_replace() -> None:
    # Given a code as an enum member
    code = errors.TIMED_OUT
    # When it is compared, formatted, serialized and used as a key / Then it is its value
    assert code == "TIMED_OUT"
    assert f"{code}" == "TIMED_OUT"
    assert str(code) == "TIMED_OUT"
    assert json.dumps({"error_code": code}) == '{"error_code": "TIMED_OUT"}'
    assert errors.PUBLIC_MESSAGES["TIMED_OUT"] == errors.PUBLIC_MESSAGES[code]
    assert errors.ERROR_CODES["UpstreamTimeoutError"] == "UPSTREAM_TIMEOUT"


def test_a_failure_code_stored_in_a_model_is_a_plain_string() -> None:
    # Given the workflow's Failure model given an enum member
    from imagegateway.domain.tickets import Failure

    failure = Failure(code=FailureCode.NOT_SUBMITTED, message="m")
    # When it is dumped / Then the row and the caller read the plain value
    assert failure.model_dump() == {"code": "NOT_SUBMITTED", "message": "m"}
    assert json.loads(failure.model_dump_json())["code"] == "NOT_SUBMITTED"


def test_job_codes_and_the_others_split_failure_code() -> None:
    # Given the codes a job can end with and those it cannot
    # Then together they are FailureCode, and no code is both
    assert set(FailureCode) == errors.JOB_FAILURE_CODES | errors.NOT_JOB_CODES
    assert set() == errors.JOB_FAILURE_CODES & errors.NOT_JOB_CODES


def test_public_messages_are_keyed_by_failure_codes() -> None:
    # Given the stable texts callers read / Then each is for a FailureCode (not a stray string)
    assert [key for key in errors.PUBLIC_MESSAGES if not isinstance(key, FailureCode)] == []


def test_every_configuration_error_has_a_public_message() -> None:
    # Given every configuration error class (the HTTP API answers PUBLIC_MESSAGES[exc.code])
    classes = [
        cls for cls in errors.gateway_error_classes() if issubclass(cls, errors.ConfigurationError)
    ]
    assert errors.UpstreamKeyMissingError in classes
    # Then each code has its text, and so do the codes a crash or the reconciler ends a job with
    assert {cls.code for cls in classes} <= set(errors.PUBLIC_MESSAGES)
    assert {errors.INTERNAL_ERROR, errors.WORKFLOW_FAILED, errors.TIMED_OUT} <= set(
        errors.PUBLIC_MESSAGES
    )


def test_step_functions_errors_map_to_job_codes() -> None:
    # Given the errors Step Functions raises by itself / Then each maps to a code a job can end
    # with, and is named as Step Functions names it
    assert all(name.startswith("States.") for name in errors.STATES_ERROR_CODES)
    assert set(errors.STATES_ERROR_CODES.values()) <= errors.JOB_FAILURE_CODES


def test_error_codes_reach_every_class_however_deep_and_only_this_modules() -> None:
    # Given a GatewayError subclass defined outside errors.py (as a test or a plugin might)
    class Elsewhere(errors.UpstreamTimeoutError):
        pass

    # When the classes are walked / Then it is not one of errors.py's, and the deepest of
    # errors.py's are
    names = [cls.__name__ for cls in errors.gateway_error_classes()]
    assert "Elsewhere" not in names
    assert {"UpstreamTimeoutError", "UpstreamRateLimitedError", "UpstreamKeyMissingError"} <= set(
        names
    )
    assert set(errors.ERROR_CODES) == set(names)
