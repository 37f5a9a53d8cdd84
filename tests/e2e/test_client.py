"""The client over the local stack: the `imagegateway` console script installed in the venv, run
as a user would run it, and the Python API."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from imagegateway_client import Client, JobFailedError, Kind

from tests.e2e.conftest import Gateway

pytestmark = pytest.mark.network

# The console script `make install` put next to this interpreter.
CLI = Path(sys.executable).parent / "imagegateway"


def imagegateway(*args: str) -> subprocess.CompletedProcess[str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in ("IMAGEGATEWAY_URL", "IMAGEGATEWAY_API_KEY")
    }
    return subprocess.run(  # noqa: S603 (our own console script, fixed arguments)
        [str(CLI), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        check=False,
    )


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def test_the_cli_generates_saves_the_pngs_and_prints_their_paths_then_reads_the_status(
    gateway: Gateway, tmp_path: Path
) -> None:
    # Given the console script and the running stack
    assert CLI.is_file(), "make install puts the imagegateway console script in the venv"
    out = tmp_path / "images"
    # When a user generates two images
    done = imagegateway(
        "generate",
        "--prompt",
        "a lighthouse at dusk",
        "--samples",
        "2",
        "--width",
        "256",
        "--height",
        "192",
        "--out",
        str(out),
        "--url",
        gateway.url,
    )
    # Then it exits 0, printing the saved PNGs' paths, each under out/<job id>/
    assert done.returncode == 0, done.stderr
    paths = [Path(line) for line in done.stdout.splitlines()]
    assert [path.name for path in paths] == ["0.png", "1.png"]
    job_id = paths[0].parent.name
    assert all(path.parent == out / job_id for path in paths)
    assert [png_size(path) for path in paths] == [(256, 192), (256, 192)]
    assert f"job {job_id} SUCCESS after" in done.stderr
    # And the status command reports it SUCCESS, finding its kind by itself
    status = imagegateway("status", job_id, "--url", gateway.url)
    assert status.returncode == 0, status.stderr
    assert "status    SUCCESS" in status.stdout.splitlines()
    assert "kind      text2image" in status.stdout.splitlines()


def test_the_cli_exits_1_with_the_jobs_failure(gateway: Gateway, tmp_path: Path) -> None:
    done = imagegateway(
        "generate",
        "--prompt",
        "x",
        "--model-id",
        "fake-failure",
        "--out",
        str(tmp_path),
        "--url",
        gateway.url,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert "ended FAILURE: UPSTREAM_FAILURE" in done.stderr


def test_the_python_client_generates_each_kind(gateway: Gateway, tmp_path: Path) -> None:
    client = Client(gateway.url, poll_interval=0.25, max_poll_interval=0.5)
    image = "https://example.com/photo.png"
    kinds: list[tuple[Kind, str | None, str | None]] = [
        ("text2image", None, None),
        ("image2image", image, None),
        ("inpainting", image, image),
    ]
    for kind, init_image, mask_image in kinds:
        model_id = f"client-{kind}-{uuid.uuid4().hex[:8]}"
        result = client.generate(
            prompt="a red door",
            kind=kind,
            model_id=model_id,
            loras={"c7e734b3-db74-43c8-a50d-d1cc2fa150fc": 0.9},
            init_image=init_image,
            mask_image=mask_image,
            out=tmp_path,
            timeout=60,
        )
        assert result.job.status == "SUCCESS"
        assert result.job.kind == kind
        assert [png_size(path) for path in result.files] == [(512, 512)]
        jobs = gateway.upstream_stats()["jobs"].values()
        assert [job["kind"] for job in jobs if job["model_id"] == model_id] == [kind]


def test_the_python_client_raises_a_failed_job_and_an_unknown_one(
    gateway: Gateway, tmp_path: Path
) -> None:
    client = Client(gateway.url, poll_interval=0.25, max_poll_interval=0.5)
    with pytest.raises(JobFailedError) as failed:
        client.generate(prompt="x", model_id="fake-failure", out=tmp_path, timeout=60)
    assert failed.value.job.error_code == "UPSTREAM_FAILURE"
    status = imagegateway("status", failed.value.job.id, "--url", gateway.url)
    assert status.returncode == 1
    assert "status    FAILURE" in status.stdout
    unknown = imagegateway("status", str(uuid.uuid4()), "--url", gateway.url)
    assert unknown.returncode == 1
    assert "unknown or not yours" in unknown.stderr
