"""The template as a whole: cfn-lint (the SAM template, and the translated one with its ASL),
the resources the code is written against, checkov.

These tests read files only: no network, no AWS account, no Docker.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cfnlint.api import lint, lint_file

from tests.template.support import CONTRACT_RESOURCES, ROOT, STATE_MACHINE_ID, TEMPLATE

pytestmark = pytest.mark.usefixtures("no_network")


CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"


CHECKOV_CONFIG = ROOT / ".checkov.yaml"


MAKEFILE = ROOT / "Makefile"


def errors_and_warnings(matches: list[Any]) -> list[str]:
    return [str(m) for m in matches if m.rule.id[0] in "EW"]


def checkov_skips() -> list[tuple[str, str]]:
    """(check id, the comment line above it) for every skip-check entry in .checkov.yaml."""
    lines = CHECKOV_CONFIG.read_text(encoding="utf-8").splitlines()
    skips = []
    for number, line in enumerate(lines):
        entry = re.fullmatch(r"\s*-\s*(CKV\w+)\s*(#.*)?", line)
        if entry:
            above = lines[number - 1].strip() if number else ""
            skips.append((entry.group(1), above.removeprefix("#").strip()))
    return skips


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


def test_contract_resources_exist_with_their_types(template: dict[str, Any]) -> None:
    # Given the logical ids the code and the other parts are written against
    # When the template's resources are listed
    actual = {k: template["Resources"].get(k, {}).get("Type") for k in CONTRACT_RESOURCES}
    # Then every one exists with the expected type
    assert actual == CONTRACT_RESOURCES


def test_every_checkov_skip_is_justified() -> None:
    # Given the checks .checkov.yaml skips
    skips = checkov_skips()
    config = yaml.safe_load(CHECKOV_CONFIG.read_text(encoding="utf-8"))
    # When each is paired with the comment line above it
    assert [check for check, _ in skips] == config["skip-check"]
    # Then every skip carries a one-line reason, and nothing turns failures into warnings
    assert [check for check, reason in skips if len(reason.split()) < 8] == []
    assert not {"soft-fail", "soft-fail-on", "hard-fail-on"} & set(config)


def test_make_lint_runs_checkov_and_fails_on_findings() -> None:
    # Given the Makefile's lint recipe
    text = MAKEFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    recipe = re.search(r"^lint:.*\n((?:\t.*\n)+)", text, flags=re.M)
    assert recipe, "no lint target"
    commands = recipe.group(1)
    # When its commands are read
    # Then it runs cfn-lint and then the pinned checkov, offline, with the justified skips
    checkov_line = next(line for line in commands.splitlines() if "checkov " in line)
    assert commands.index("cfn-lint") < commands.index("checkov ")
    for flag in ("-f template.yaml", "--skip-download", "--config-file .checkov.yaml"):
        assert flag in checkov_line, flag
    assert "--soft-fail" not in checkov_line
    assert not checkov_line.lstrip().startswith("-")  # a leading "-" would ignore its exit code


@pytest.mark.skipif(
    not CHECKOV.exists(),
    reason="checkov lives in .venv-checkov, which `make lint` builds (CI always runs it); "
    "run `make .venv-checkov/.installed` to run this here",
)
def test_checkov_is_clean_on_the_sam_and_the_translated_template(
    translated: dict[str, Any], tmp_path: Path
) -> None:
    # Given the SAM template, its translation (where the IAM roles are), and a copy of the
    # template with one known finding (point-in-time recovery off) to prove checkov bites
    translated_file = tmp_path / "translated.json"
    translated_file.write_text(json.dumps(translated), encoding="utf-8")
    broken_file = tmp_path / "broken.yaml"
    broken_file.write_text(
        TEMPLATE.read_text(encoding="utf-8").replace(
            "PointInTimeRecoveryEnabled: true", "PointInTimeRecoveryEnabled: false"
        ),
        encoding="utf-8",
    )
    # When checkov checks all three, offline, with the project's skips
    result = subprocess.run(  # noqa: S603 - a fixed command, on files this test wrote
        [
            str(CHECKOV),
            *("-f", str(TEMPLATE), "-f", str(translated_file), "-f", str(broken_file)),
            *("--framework", "cloudformation", "--skip-download", "--quiet", "--compact"),
            *("--config-file", str(CHECKOV_CONFIG), "--output", "json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )
    report = json.loads(result.stdout)
    assert report["summary"]["parsing_errors"] == 0
    failed: dict[str, set[str]] = {}
    for check in report["results"]["failed_checks"]:
        name = Path(check["file_abs_path"]).name
        failed.setdefault(name, set()).add(f"{check['check_id']} {check['resource']}")
    # Then the real templates have no finding, and the broken copy fails as it should
    assert failed.pop("broken.yaml", set()) >= {
        "CKV_AWS_28 AWS::DynamoDB::Table.JobsTable",
        "CKV_AWS_28 AWS::DynamoDB::Table.IdempotencyTable",
    }
    assert failed == {}
    assert result.returncode != 0  # the finding in the broken copy fails the run
