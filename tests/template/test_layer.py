"""The CommonLayer build: SAM's makefile build method, layers/common/Makefile, its requirements.

The build itself needs PyPI, so here pip is a stand-in (the Makefile's PIP variable) that records
its arguments and lays out a tree like the real install's; the Makefile's own steps (copy the
package, prune what the Lambda runtime provides) run for real. No network, no Docker, no AWS.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

from tests.support.runtime_python import runtime_python

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
LAYER = ROOT / "layers" / "common"
REQUIREMENTS = LAYER / "requirements.txt"

# What the python3.12 runtime has (boto3, botocore and their own dependencies): the layer must not
# ship them, or its copies shadow the runtime's and botocore no longer matches the runtime's boto3.
RUNTIME_DISTRIBUTIONS = {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six"}

# The stand-in pip: records its arguments, then installs a tree shaped like the real one would be.
FAKE_PIP = """
import json, sys
from pathlib import Path

args = sys.argv[1:]
Path(sys.argv[0]).with_suffix(".json").write_text(json.dumps(args))
assert Path(args[args.index("-r") + 1]).is_file()
target = Path(args[args.index("--target") + 1])
files = [
    "aws_lambda_powertools/__init__.py", "aws_lambda_powertools-3.37.0.dist-info/METADATA",
    "aws_xray_sdk/__init__.py", "requests/__init__.py", "urllib3/__init__.py",
    "urllib3-2.8.0.dist-info/METADATA", "certifi/__init__.py", "certifi/tests/__init__.py",
    "pydantic/__init__.py", "pydantic/__pycache__/main.cpython-312.pyc", "typing_extensions.py",
    "botocore/__init__.py", "botocore/data/s3/2006-03-01/service-2.json.gz",
    "botocore-1.44.8.dist-info/METADATA", "boto3/__init__.py", "boto3-1.44.8.dist-info/RECORD",
    "s3transfer/__init__.py", "s3transfer-0.19.3.dist-info/METADATA", "jmespath/__init__.py",
    "jmespath-1.1.0.dist-info/METADATA", "dateutil/__init__.py",
    "python_dateutil-2.9.0.post0.dist-info/METADATA", "six.py", "six-1.17.0.dist-info/METADATA",
    "bin/jp.py",
]
for name in files:
    (target / name).parent.mkdir(parents=True, exist_ok=True)
    (target / name).write_text("")
"""


def load_template() -> dict[str, Any]:
    template: dict[str, Any] = yaml_parse(TEMPLATE.read_text(encoding="utf-8"))
    return template


def run_make(*args: str) -> subprocess.CompletedProcess[str]:
    # An outer make's flags and variables (make test PYTHON=...) must not reach this one.
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    env.pop("ARTIFACTS_DIR", None)
    return subprocess.run(  # noqa: S603
        ["make", "--no-print-directory", "-C", str(LAYER), *args],  # noqa: S607
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def tree(root: Path) -> set[str]:
    return {path.relative_to(root).as_posix() for path in root.rglob("*")}


def test_the_layer_is_built_by_its_makefile_and_its_old_versions_are_deleted() -> None:
    # Given the template's CommonLayer
    layer = load_template()["Resources"]["CommonLayer"]
    # When its build metadata and properties are read
    # Then SAM builds it with layers/common/Makefile, for arm64, and deletes replaced versions
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert layer["Metadata"]["BuildArchitecture"] == "arm64"
    assert layer["Properties"]["RetentionPolicy"] == "Delete"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12"]
    content = ROOT / layer["Properties"]["ContentUri"]
    assert content.resolve() == LAYER
    assert re.search(r"^build-CommonLayer:", (content / "Makefile").read_text("utf-8"), re.M)


def test_the_build_installs_lambda_wheels_and_drops_what_the_runtime_has(tmp_path: Path) -> None:
    # Given a stand-in pip and an empty artifacts directory
    pip = tmp_path / "pip.py"
    pip.write_text(FAKE_PIP, encoding="utf-8")
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    # When SAM's build target runs
    result = run_make(
        "build-CommonLayer",
        f"ARTIFACTS_DIR={artifacts}",
        f"PIP={sys.executable} {pip}",
        "COMPILE_PYTHON=",  # no byte code here: the next tests compile
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # Then pip installed the requirements as wheels for the python3.12 arm64 runtime into python/
    args = json.loads(pip.with_suffix(".json").read_text(encoding="utf-8"))
    assert args[0] == "install"
    for flag in (
        ["--platform", "manylinux2014_aarch64"],
        ["--implementation", "cp"],
        ["--python-version", "3.12"],
        ["--target", str(artifacts / "python")],
        ["-r", str(REQUIREMENTS)],
    ):
        assert args[args.index(flag[0]) : args.index(flag[0]) + 2] == flag
    assert "--only-binary=:all:" in args
    # And the layer holds the package, but none of the runtime's packages, scripts or byte code
    built = artifacts / "python"
    top = {path.name for path in built.iterdir()}
    assert top == {
        "aws_lambda_powertools",
        "aws_lambda_powertools-3.37.0.dist-info",
        "aws_xray_sdk",
        "requests",
        "urllib3",  # requests needs it; the runtime's botocore accepts urllib3 2.x on 3.10+
        "urllib3-2.8.0.dist-info",
        "certifi",
        "pydantic",
        "typing_extensions.py",
        "imagegateway",
    }
    package = {name for name in tree(LAYER / "imagegateway") if "__pycache__" not in name}
    assert tree(built / "imagegateway") == package
    assert "__init__.py" in package
    assert [name for name in tree(built) if "__pycache__" in name or name.endswith(".pyc")] == []
    assert not (built / "certifi" / "tests").exists()


def test_the_layer_ships_byte_code_for_the_runtimes_python_trusted_without_its_source(
    tmp_path: Path,
) -> None:
    python = runtime_python()
    if python is None:
        pytest.skip("no python3.12 on this machine to compile with")
    # Given a stand-in pip's tree
    pip = tmp_path / "pip.py"
    pip.write_text(FAKE_PIP, encoding="utf-8")
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    # When SAM's build target runs with the runtime's Python at hand
    result = run_make(
        "build-CommonLayer",
        f"ARTIFACTS_DIR={artifacts}",
        f"PIP={sys.executable} {pip}",
        f"COMPILE_PYTHON={python}",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # Then every module has its 3.12 byte code beside it
    built = artifacts / "python"
    sources = list(built.rglob("*.py"))
    assert sources
    for source in sources:
        compiled = source.parent / "__pycache__" / f"{source.stem}.cpython-312.pyc"
        assert compiled.is_file(), compiled
        # hash-based, unchecked (PEP 552 flags = 0b01): read-only /opt, zip timestamps
        flags = int.from_bytes(compiled.read_bytes()[4:8], "little")
        assert flags == 0b01, (compiled, flags)


def test_the_build_refuses_byte_code_of_another_python(tmp_path: Path) -> None:
    # Given a layer tree and this venv's Python (not 3.12)
    if sys.version_info[:2] == (3, 12):
        pytest.skip("this venv is the runtime's Python")
    layer = tmp_path / "python"
    (layer / "pkg").mkdir(parents=True)
    (layer / "pkg" / "__init__.py").write_text("", encoding="utf-8")
    # When the compile step is asked to use it
    result = run_make("compile", f"LAYER_DIR={layer}", f"COMPILE_PYTHON={sys.executable}")
    # Then it stops: the runtime would ignore (and, read-only, never replace) that byte code
    assert result.returncode != 0
    assert "not 3.12" in result.stdout + result.stderr
    assert not list(layer.rglob("*.pyc"))


def test_prune_refuses_to_run_without_a_layer_dir(tmp_path: Path) -> None:
    # Given no LAYER_DIR, and then one that does not exist
    for layer_dir in ("", str(tmp_path / "missing")):
        # When the prune target runs
        result = run_make("prune", f"LAYER_DIR={layer_dir}")
        # Then it stops before deleting anything
        assert result.returncode != 0
        assert "is not a directory" in result.stdout + result.stderr


def test_the_layer_requirements_pin_everything_but_the_runtime_packages() -> None:
    # Given the layer's requirements
    lines = REQUIREMENTS.read_text(encoding="utf-8").splitlines()
    requirements = [line for line in lines if line.strip() and not line.startswith("#")]
    # When each is parsed
    pins = [
        re.fullmatch(r"([A-Za-z0-9._-]+)(\[[a-z,]+\])?==[0-9][0-9A-Za-z.]*", r)
        for r in requirements
    ]
    # Then each is pinned (==), and none is a package the runtime provides
    assert [r for r, pin in zip(requirements, pins, strict=True) if not pin] == []
    names = {re.sub(r"[-_.]+", "-", pin.group(1)).lower() for pin in pins if pin}
    assert names & RUNTIME_DISTRIBUTIONS == set()
    assert {"aws-lambda-powertools", "pydantic", "requests"} <= names
