"""The state machine, the README and imagegateway.domain.errors agree on errors and failure codes.

`imagegateway.domain.errors.FailureCode` is the one source of failure codes. The ASL cannot import
Python and the README is prose, so these tests hold both to it: every error name a Retry or Catch
matches is a runtime error or a gateway error class, every code the ASL writes is a FailureCode,
every message it writes is the one Python holds, and the README's table lists exactly the codes
a job can end with. Files only: no network, no AWS.
"""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imagegateway.domain import errors
from imagegateway.domain.errors import FailureCode, GatewayError

ROOT = Path(__file__).resolve().parents[2]
ASL = ROOT / "statemachine" / "image_job.asl.json"
README = ROOT / "README.md"
README_TABLE_HEADING = "Failure codes on a job"
RETRYABLE_COLUMN = "Retryable?"

# Error names Step Functions reports itself (the States Language's own, appendix A of the spec).
STATES_ERRORS = {
    "States.ALL",
    "States.BranchFailed",
    "States.DataLimitExceeded",
    "States.ExceedToleratedFailureThreshold",
    "States.HeartbeatTimeout",
    "States.Http.Socket",
    "States.IntrinsicFailure",
    "States.ItemReaderFailed",
    "States.NoChoiceMatched",
    "States.ParameterPathFailure",
    "States.Permissions",
    "States.QueryEvaluationError",
    "States.ResultPathMatchFailure",
    "States.ResultWriterFailed",
    "States.Runtime",
    "States.TaskFailed",
    "States.Timeout",
}
# Names the Lambda integration reports for the service and the runtime, not for our code. A
# name AWS adds is added here on purpose: a typo must not pass as a runtime error.
LAMBDA_RUNTIME_ERRORS = {
    "Lambda.AWSLambdaException",
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.ServiceException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.Unknown",
    "Sandbox.Timedout",
}
RUNTIME_ERRORS = STATES_ERRORS | LAMBDA_RUNTIME_ERRORS

# Codes that no exception class carries: the workflow's states, the tasks and the reconciler
# set them on a job themselves.
CLASSLESS_CODES = {
    FailureCode.UPSTREAM_REJECTED,
    FailureCode.UPSTREAM_FAILURE,
    FailureCode.TIMED_OUT,
    FailureCode.NOT_SUBMITTED,
    FailureCode.WORKFLOW_FAILED,
    FailureCode.RECONCILE_FAILED,
    FailureCode.CANCELLED,
}
# Error classes meant to share a code with another class. A class listed here may
# inherit its parent's code; any other class names its own, distinct code.
# A lost submit claim is an unknown outcome in the workflow; the intake retries it instead.
# A task for a job that ended outside its execution stops it quietly: the job is finished.
# A cached job's images gone is caught by the result cache (the request is generated again):
# no caller ever reads its code, the generic one.
SHARED_CODE_CLASSES: set[str] = {
    "UpstreamOutcomeUnknownError",
    "SubmitAlreadyClaimedError",
    "JobFinishedError",
    "JobEndedElsewhereError",
    "GatewayError",
    "StoredImagesGoneError",
    # Both are a 400 MALFORMED_BODY; the subclass only carries where the input is unreadable.
    "MalformedBodyError",
    "UnreadableInputError",
}
# Codes a job can end with that the README's table does not list yet. They belong in the table
# (README.md, "Failure codes on a job"); once there, take them out of this set: the test below
# fails until both agree.
MISSING_FROM_README_TABLE: set[errors.FailureCode] = set()


# ---------------------------------------------------------------- reading the files


def load_asl() -> dict[str, Any]:
    return json.loads(ASL.read_text(encoding="utf-8"))


def walk(node: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """Every (path, key, value) of every object anywhere in a JSON document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, key, value
            yield from walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from walk(item, f"{path}/{i}")


def iter_states(machine: dict[str, Any], scope: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every state with its name, in Parallel branches and Map processors too."""
    for name, state in machine.get("States", {}).items():
        yield name, state
        for i, branch in enumerate(state.get("Branches", [])):
            yield from iter_states(branch, f"{scope}/{name}/{i}")
        for key in ("ItemProcessor", "Iterator"):
            if isinstance(state.get(key), dict):
                yield from iter_states(state[key], f"{scope}/{name}/{key}")


def gateway_error_classes() -> list[type[GatewayError]]:
    """GatewayError and every subclass errors.py defines, walked here (not errors.py's walk)."""
    found: list[type[GatewayError]] = []
    pending: list[type[GatewayError]] = [GatewayError]
    while pending:
        cls = pending.pop()
        if cls.__module__ == errors.__name__ and cls not in found:
            found.append(cls)
            pending.extend(cls.__subclasses__())
    return found


def readme_table(text: str) -> tuple[list[str], list[list[str]]]:
    """The header cells and the rows' cells of the table under the heading line."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if README_TABLE_HEADING in line]
    assert len(starts) == 1, f"README.md: one line must say {README_TABLE_HEADING!r}"
    rows: list[str] = []
    for line in lines[starts[0] + 1 :]:
        if line.startswith("|"):
            rows.append(line)
        elif rows:
            break
        else:
            assert not line.strip(), f"README.md: the table must follow {README_TABLE_HEADING!r}"
    header, separator, *body = rows
    assert set(separator) <= set("|-: ")
    cells = [cell.strip() for cell in header.split("|")[1:-1]]
    return cells, [[cell.strip() for cell in row.split("|")[1:-1]] for row in body]


def codes_of(row: list[str]) -> list[str]:
    found = re.findall(r"`([^`]+)`", row[0])
    assert found, f"README.md: a row of the failure-code table names no code: {row}"
    return found


def readme_failure_codes(text: str) -> list[str]:
    """The codes (in backticks) of the first column of the table under the heading line."""
    header, rows = readme_table(text)
    assert header[0] == "Code"
    return [code for row in rows for code in codes_of(row)]


def readme_retryable(text: str) -> dict[str, bool]:
    """Each code's `Retryable?` cell: one yes / no for every code of its row, or one per code,
    in the row's order."""
    header, rows = readme_table(text)
    column = header.index(RETRYABLE_COLUMN)
    decisions: dict[str, bool] = {}
    for row in rows:
        codes, said = codes_of(row), re.findall(r"\b(yes|no)\b", row[column])
        assert len(said) in (1, len(codes)), f"README.md: one yes / no, or one per code: {row}"
        for code, word in zip(codes, said * len(codes) if len(said) == 1 else said, strict=True):
            decisions[code] = word == "yes"
    return decisions


# ---------------------------------------------------------------- the checks


def unknown_error_names(asl: dict[str, Any]) -> list[str]:
    """Names in Retry / Catch ErrorEquals that are neither a runtime error nor an error class."""
    classes = {cls.__name__ for cls in gateway_error_classes()}
    return [
        f"{path}: {name}"
        for path, key, value in walk(asl)
        if key == "ErrorEquals"
        for name in value
        if name not in RUNTIME_ERRORS and name not in classes
    ]


def unknown_codes(asl: dict[str, Any]) -> list[str]:
    """`code` literals anywhere in the ASL that are not a code a job can end with."""
    return [
        f"{path}: {value!r}"
        for path, key, value in walk(asl)
        if key == "code" and value not in errors.JOB_FAILURE_CODES
    ]


def recorded_failures(asl: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The failure each Pass state writes (a Result with a code), by state name."""
    return {
        name: state["Result"]
        for name, state in iter_states(asl)
        if state["Type"] == "Pass"
        and isinstance(state.get("Result"), dict)
        and "code" in state["Result"]
    }


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def asl() -> dict[str, Any]:
    return load_asl()


# ---------------------------------------------------------------- (a) error names


def test_every_error_the_asl_matches_is_a_runtime_error_or_a_gateway_error_class(
    asl: dict[str, Any],
) -> None:
    # Given the state machine, and the error classes imagegateway.domain.errors defines
    names = {name for _, key, value in walk(asl) if key == "ErrorEquals" for name in value}
    assert "UpstreamUnavailableError" in names  # the walk really reaches the retriers
    # When every name its retriers and catchers match is checked
    unknown = unknown_error_names(asl)
    # Then each is Step Functions' or Lambda's own, or the name of a class a task can raise
    # (the name of a renamed or removed class would never match again, silently)
    assert unknown == []


def test_a_renamed_error_class_is_reported(asl: dict[str, Any]) -> None:
    # Given a copy of the ASL whose retrier names a class errors.py does not define
    broken = copy.deepcopy(asl)
    retriers = broken["States"]["CheckStatus"]["Retry"]
    (retrier,) = [r for r in retriers if "UpstreamUnavailableError" in r["ErrorEquals"]]
    retrier["ErrorEquals"] = ["UpstreamUnreachableError"]
    # When it is checked / Then the name is reported, with where it is
    assert "/States/CheckStatus/Retry/1: UpstreamUnreachableError" in unknown_error_names(broken)


# ---------------------------------------------------------------- (b) codes in the ASL


def test_every_code_the_asl_writes_is_a_failure_code_a_job_can_end_with(
    asl: dict[str, Any],
) -> None:
    # Given every `code` literal in the state machine (its Pass states' results and any other)
    codes = [value for _, key, value in walk(asl) if key == "code"]
    assert len(codes) >= 3  # the walk really reaches the Pass states
    # When each is looked up / Then it is a FailureCode that may end a job
    assert unknown_codes(asl) == []


def test_a_misspelt_code_in_the_asl_is_reported(asl: dict[str, Any]) -> None:
    # Given a copy of the ASL whose deadline state writes a code FailureCode lacks
    broken = copy.deepcopy(asl)
    broken["States"]["DeadlinePassed"]["Result"]["code"] = "TIMEOUT"
    # When it is checked / Then the code is reported
    assert "/States/DeadlinePassed/Result: 'TIMEOUT'" in unknown_codes(broken)


# ---------------------------------------------------------------- (c) the classes


def test_failure_code_values_are_their_names() -> None:
    # Given the FailureCode members / Then each value is spelt as its name (the public value;
    # enum.auto() would lower-case it), and the values are distinct (no alias members)
    assert [member.value for member in FailureCode] == [member.name for member in FailureCode]
    assert len(FailureCode.__members__) == len(list(FailureCode))


def test_every_gateway_error_names_its_own_distinct_failure_code() -> None:
    # Given every GatewayError subclass errors.py defines, however deep
    classes = gateway_error_classes()
    assert errors.UpstreamTimeoutError in classes  # three levels down
    # When their codes are read
    codes = Counter(cls.code for cls in classes)
    # Then each is a FailureCode member, set on the class itself (a new class does not silently
    # inherit its parent's code) and held by no other class, unless the sharing is intended
    assert [cls.__name__ for cls in classes if not isinstance(cls.code, FailureCode)] == []
    assert [
        cls.__name__
        for cls in classes
        if "code" not in vars(cls) and cls.__name__ not in SHARED_CODE_CLASSES
    ] == []
    assert [
        cls.__name__
        for cls in classes
        if codes[cls.code] > 1 and cls.__name__ not in SHARED_CODE_CLASSES
    ] == []
    # and a Catch matching a class name matches exactly one class
    assert len({cls.__name__ for cls in classes}) == len(classes)


def test_error_codes_covers_every_gateway_error_class() -> None:
    # Given every GatewayError subclass / When ERROR_CODES is compared
    expected = {cls.__name__: cls.code for cls in gateway_error_classes()}
    # Then it maps each class name to the class's code, and nothing else
    assert expected == errors.ERROR_CODES


def test_every_failure_code_is_carried_by_a_class_or_set_by_the_workflow() -> None:
    # Given the codes the classes carry and those the workflow and the reconciler set
    class_codes = {cls.code for cls in gateway_error_classes()}
    # When FailureCode is compared / Then it holds exactly those: none is dead, none missing
    assert set(FailureCode) == class_codes | CLASSLESS_CODES
    assert class_codes & CLASSLESS_CODES == set()


def test_the_old_constants_are_the_failure_code_members() -> None:
    # Given the module constants other modules import / Then each is its FailureCode member
    for name in (
        "INTERNAL_ERROR",
        "NOT_SUBMITTED",
        "RECONCILE_FAILED",
        "TIMED_OUT",
        "UPSTREAM_FAILURE",
        "UPSTREAM_REJECTED",
        "WORKFLOW_FAILED",
    ):
        assert getattr(errors, name) is FailureCode[name]
        assert getattr(errors, name) == name  # and still equal to the plain string
    assert errors.INTERNAL_ERROR is GatewayError.code


# ---------------------------------------------------------------- (d) the README's table


def test_the_readme_table_lists_exactly_the_codes_a_job_can_end_with() -> None:
    # Given the codes in the README's "Failure codes on a job" table
    listed = readme_failure_codes(README.read_text(encoding="utf-8"))
    assert "UPSTREAM_OUTCOME_UNKNOWN" in listed  # one row, two codes: both read
    assert "UPSTREAM_TIMEOUT" in listed
    # When they are compared with FailureCode
    # Then each is a FailureCode a job can end with, listed once
    assert [code for code in listed if code not in FailureCode.__members__] == []
    assert [code for code in listed if code not in errors.JOB_FAILURE_CODES] == []
    assert len(listed) == len(set(listed))
    # and every code a job can end with is in the table, but for the known gap (see
    # MISSING_FROM_README_TABLE: document them there, then empty the set)
    assert errors.JOB_FAILURE_CODES - set(listed) == MISSING_FROM_README_TABLE


def test_the_readme_table_says_each_codes_retryable_decision() -> None:
    # Given the README's table, whose `Retryable?` column says yes / no per code
    said = readme_retryable(README.read_text(encoding="utf-8"))
    # Then it says, for every code it lists, FailureCode's own decision
    assert said == {code: FailureCode(code).retryable for code in said}
    assert set(said) == set(readme_failure_codes(README.read_text(encoding="utf-8")))


def test_the_readme_retryable_parser_reads_one_word_per_row_or_per_code() -> None:
    text = "\n".join(
        [
            "Failure codes on a job:",
            "",
            "| Code | Meaning | Retryable? |",
            "|---|---|---|",
            "| `TIMED_OUT` | late | yes |",
            "| `DOWNLOAD_FAILED` / `IMAGE_REJECTED` | images | yes / no |",
            "| `INTERNAL_ERROR`, `WORKFLOW_FAILED` | broke | **yes** (after a moment) |",
        ]
    )
    assert readme_retryable(text) == {
        "TIMED_OUT": True,
        "DOWNLOAD_FAILED": True,
        "IMAGE_REJECTED": False,
        "INTERNAL_ERROR": True,
        "WORKFLOW_FAILED": True,
    }


def test_the_readme_table_parser_reads_every_code_of_a_row() -> None:
    # Given a table in the README's form, with rows of one, two and three codes
    text = "\n".join(
        [
            "Failure codes on a job (all defined in `imagegateway/domain/errors.py`):",
            "",
            "| Code | Meaning | Charged? |",
            "|---|---|---|",
            "| `TIMED_OUT` | late | per upstream |",
            "| `DOWNLOAD_FAILED` / `IMAGE_REJECTED` | images | yes |",
            "| `INTERNAL_ERROR`, `CONFIGURATION_ERROR`, `WORKFLOW_FAILED` | broke | `maybe` |",
            "",
            "After the table, `NOT_A_CODE` is prose.",
        ]
    )
    # When it is parsed / Then the first column's codes are read, nothing else
    assert readme_failure_codes(text) == [
        "TIMED_OUT",
        "DOWNLOAD_FAILED",
        "IMAGE_REJECTED",
        "INTERNAL_ERROR",
        "CONFIGURATION_ERROR",
        "WORKFLOW_FAILED",
    ]


# ---------------------------------------------------------------- messages


def test_the_failures_the_asl_writes_are_the_ones_python_holds(asl: dict[str, Any]) -> None:
    # Given the failure (code and message) each Pass state of the ASL writes
    in_asl = recorded_failures(asl)
    # When they are compared with errors.ASL_STATE_FAILURES
    in_python = {
        name: {"code": failure.code, "message": failure.message}
        for name, failure in errors.ASL_STATE_FAILURES.items()
    }
    # Then each state writes, word for word, the code and message Python holds for it (the
    # deadline texts are the same Python writes: PUBLIC_MESSAGES[TIMED_OUT] and
    # NOT_SUBMITTED_BY_DEADLINE_MESSAGE), and no state writes a failure Python does not know
    assert in_asl == in_python
    assert in_asl["DeadlinePassed"]["message"] == errors.PUBLIC_MESSAGES[errors.TIMED_OUT]
    assert in_asl["SubmitDeadlinePassed"]["message"] == errors.NOT_SUBMITTED_BY_DEADLINE_MESSAGE


def test_a_reworded_message_in_the_asl_is_caught(asl: dict[str, Any]) -> None:
    # Given a copy of the ASL whose deadline state says something else than Python
    broken = copy.deepcopy(asl)
    broken["States"]["DeadlinePassed"]["Result"]["message"] = "the job took too long"
    # When its failures are read / Then they no longer match Python's
    failures = recorded_failures(broken)
    assert failures["DeadlinePassed"]["message"] != errors.PUBLIC_MESSAGES[errors.TIMED_OUT]
    assert failures != {
        name: {"code": f.code, "message": f.message}
        for name, f in errors.ASL_STATE_FAILURES.items()
    }


def test_a_job_ticket_carries_its_failure_once(asl: dict[str, Any]) -> None:
    # Given every state that leads to RecordFailure: the Pass states that decide a failure and
    # the Catches that catch one
    from imagegateway.domain.tickets import CaughtError, Failure, JobTicket

    writers = [
        (name, state.get("ResultPath"))
        for name, state in iter_states(asl)
        if state.get("Next") == "RecordFailure" and state["Type"] == "Pass"
    ] + [
        (name, catch.get("ResultPath"))
        for name, state in iter_states(asl)
        for catch in state.get("Catch", [])
        if catch["Next"] == "RecordFailure"
    ]
    assert len(writers) >= 4
    # Then all of them write the ticket's one failure field, which the ticket reads either way
    assert {path for _, path in writers} == {"$.failure"}, writers
    assert "error" not in JobTicket.model_fields
    base = {"job_id": "j", "run_token": "t" * 16, "status": "PENDING", "wait_seconds": 1}
    base["deadline_at"] = "2026-11-25T16:15:00+00:00"
    caught = JobTicket.model_validate({**base, "failure": {"Error": "E", "Cause": "c"}})
    decided = JobTicket.model_validate({**base, "failure": {"code": "TIMED_OUT", "message": "m"}})
    assert isinstance(caught.failure, CaughtError)
    assert isinstance(decided.failure, Failure)
    assert caught.to_state()["failure"] == {"Error": "E", "Cause": "c"}
