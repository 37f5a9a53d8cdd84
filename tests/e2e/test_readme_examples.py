"""The README's Python examples, run as printed against the local stack: the client's tour, the
SigV4 snippet, and the pipeline's boto3 snippet. An example that drifts from the code fails
here (the webhook receiver is left out: it needs a Flask app around it)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Gateway

pytestmark = pytest.mark.network

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks(heading: str) -> list[str]:
    """The ```python blocks of the README section under `heading` (to the next heading of the
    same or a higher level, outside code), dedented as a reader would paste them."""
    level = len(heading.split(" ", 1)[0])
    blocks: list[str] = []
    inside, fence, block = False, None, []
    for line in README.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if fence is not None:
            if stripped == "```":
                if fence == "python" and inside:
                    blocks.append(textwrap.dedent("\n".join(block)))
                fence, block = None, []
            else:
                block.append(line)
        elif stripped.startswith("```"):
            fence = stripped[3:]
        elif line.startswith("#"):
            marks = len(line) - len(line.lstrip("#"))
            if line == heading:
                inside = True
            elif inside and marks <= level:
                break
    return blocks


@pytest.fixture
def as_a_reader(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gateway: Gateway) -> Path:
    """A reader's shell: the stack's URL, AWS credentials (the local stack takes signed calls
    too), boto3 pointed at the stack's AWS, and a directory of their own."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IMAGEGATEWAY_API_KEY", raising=False)
    for name, value in {
        "IMAGEGATEWAY_URL": gateway.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": gateway.moto_url,
    }.items():
        monkeypatch.setenv(name, value)
    return tmp_path


def run(block: str, **names: Any) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "readme_example", **names}
    exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 (the README's own code)
    return namespace


def test_the_client_tour_runs_as_printed(as_a_reader: Path) -> None:
    # Given the Python block of "Client and CLI"
    (block,) = python_blocks("## Client and CLI")
    # When it runs against the local stack
    names = run(block)
    # Then it generated, saved, listed and ended its jobs as its comments say
    assert names["result"].job.status == "SUCCESS"
    assert len(names["result"].files) == 2
    assert all(path.read_bytes().startswith(b"\x89PNG") for path in names["result"].files)
    assert names["files"]
    out = (as_a_reader / "out").resolve()
    assert all(path.resolve().is_relative_to(out) for path in names["files"])
    assert names["page"].jobs
    assert names["job"].status in ("FAILURE", "PENDING", "SUCCESS")


def test_the_sigv4_snippet_signs_and_submits(as_a_reader: Path, gateway: Gateway) -> None:
    # Given the SigV4 block of "Two ways in" (its last line submits a job)
    (block,) = python_blocks("### Two ways in: API keys (the upstream's own) and IAM")
    names = run(block, api_url=gateway.url)
    # When its function is called again / Then the request carried a signature and was accepted
    response = names["signed_post"](
        f"{gateway.url}/sd/text2image/v1", {"model_id": "sd1.5", "prompt": "a lighthouse"}
    )
    assert response.status_code == 202, response.text
    assert response.request.headers["Authorization"].startswith("AWS4-HMAC-SHA256 ")


def test_the_pipeline_boto3_snippet_ends_with_a_completion(
    as_a_reader: Path, gateway: Gateway
) -> None:
    # Given the first Python block of "Use it from a pipeline" (an image2image envelope)
    block = python_blocks("## Use it from a pipeline")[0]
    # When it runs with the stack's outputs
    run(block, outputs=gateway.outputs())
    # Then its job ends with a Succeeded event carrying its reference
    event = gateway.completion(
        lambda e: (
            (e["detail"].get("reference"), e["detail"].get("kind")) == ("order-42", "image2image")
        )
    )
    assert event["detail"]["status"] == "SUCCESS"
