"""The `imagegateway` CLI against a fake gateway: what goes to stdout and stderr, exit codes, the
request fields it sends, and its progress display on a terminal and piped."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from imagegateway_client import Job, Progress
from imagegateway_client.cli import ProgressDisplay, main

from tests.client.conftest import FakeGateway, Reply, png_bytes


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.network
def test_generate_saves_the_images_and_prints_their_paths(
    fake: FakeGateway, tmp_path: Path
) -> None:
    fake.job("job-1", pending_polls=0, images=2)
    argv = ["generate", "--prompt", "a fox", "--samples", "2", "--out", str(tmp_path)]
    code, out, err = run([*argv, "--url", fake.url])
    assert code == 0, err
    paths = [tmp_path / "job-1" / "0.png", tmp_path / "job-1" / "1.png"]
    assert out.splitlines() == [str(path) for path in paths]
    assert [path.read_bytes() for path in paths] == [png_bytes(0), png_bytes(1)]
    assert "submitted text2image job job-1" in err
    assert "job job-1 SUCCESS after" in err


@pytest.mark.network
def test_generate_maps_its_options_to_the_upstreams_fields(
    fake: FakeGateway, tmp_path: Path
) -> None:
    fake.job("job-i", kind="inpainting", pending_polls=0)
    code, _, err = run(
        [
            "generate",
            "--url",
            fake.url,
            "--kind",
            "inpainting",
            "--prompt",
            "a red door",
            "--model-id",
            "my-model",
            "--negative-prompt",
            "blurry",
            "--lora",
            "lora-a:0.8",
            "--lora",
            "ns:lora-b:-1.25",
            "--samples",
            "1",
            "--width",
            "512",
            "--height",
            "256",
            "--seed",
            "42",
            "--steps",
            "30",
            "--guidance-scale",
            "7.5",
            "--strength",
            "0.6",
            "--init-image",
            "https://example.com/house.png",
            "--mask-image",
            "https://example.com/mask.png",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0, err
    sent = json.loads(fake.requests_to("/sd/inpainting/v1")[0].body)
    assert sent == {
        "model_id": "my-model",
        "prompt": "a red door",
        "negative_prompt": "blurry",
        "lora_models": ["lora-a", "ns:lora-b"],
        "lora_weights": ["0.8", "-1.25"],
        "samples": 1,
        "width": 512,
        "height": 256,
        "seed": 42,
        "num_inference_steps": 30,
        "guidance_scale": 7.5,
        "strength": 0.6,
        "init_image": "https://example.com/house.png",
        "mask_image": "https://example.com/mask.png",
    }


@pytest.mark.network
def test_generate_sends_controlnets_with_their_images_and_weights(
    fake: FakeGateway, tmp_path: Path
) -> None:
    # Given a controlnet job asked for with two ControlNets, a scheduler and Hi-res Fix
    fake.job("job-c", kind="controlnet", pending_polls=0)
    edges, pose = "https://example.com/edges.png", "https://example.com/pose.png"
    code, _, err = run(
        [
            *("generate", "--url", fake.url, "--kind", "controlnet", "--prompt", "a dancer"),
            *("--controlnet", f"canny:0.5={edges}", "--controlnet", f"openpose:0.8={pose}"),
            *("--scheduler", "EulerDiscreteScheduler", "--hires", "--out", str(tmp_path)),
        ]
    )
    # Then the body is the upstream's controlnet body, its lists one item per ControlNet
    assert code == 0, err
    sent = json.loads(fake.requests_to("/sd/controlnet/v1")[0].body)
    assert sent == {
        "model_id": "sd1.5",
        "prompt": "a dancer",
        "controlnets": ["canny", "openpose"],
        "init_images": [edges, pose],
        "controlnet_weights": [0.5, 0.8],
        "scheduler": "EulerDiscreteScheduler",
        "hires": True,
    }


def test_a_weight_for_some_controlnets_but_not_all_is_a_usage_error() -> None:
    code, _, err = run(
        [
            *("generate", "--prompt", "x", "--kind", "controlnet", "--url", "http://127.0.0.1:9"),
            *(
                "--controlnet",
                "canny:0.5=https://e.com/a.png",
                "--controlnet",
                "depth=https://e.com/b",
            ),
        ]
    )
    assert code == 2
    assert "give every ControlNet a weight, or none" in err


@pytest.mark.parametrize("option", ["canny", "=https://e.com/a.png", "canny:x=https://e.com/a"])
def test_a_malformed_controlnet_option_is_a_usage_error(option: str) -> None:
    with pytest.raises(SystemExit) as stopped:
        run(["generate", "--prompt", "x", "--kind", "controlnet", "--controlnet", option])
    assert stopped.value.code == 2


@pytest.mark.network
def test_generate_without_waiting_prints_the_job_id(fake: FakeGateway, tmp_path: Path) -> None:
    fake.job("job-n")
    code, out, err = run(["generate", "--prompt", "x", "--no-wait", "--url", fake.url])
    assert (code, out) == (0, "job-n\n")
    assert "imagegateway status job-n --kind text2image" in err
    assert len(fake.seen) == 1


@pytest.mark.network
def test_a_failed_job_exits_1_with_its_reason_on_stderr(fake: FakeGateway, tmp_path: Path) -> None:
    fake.job("job-f", pending_polls=0, failure=("UPSTREAM_FAILURE", "the model crashed"))
    code, out, err = run(["generate", "--prompt", "x", "--out", str(tmp_path), "--url", fake.url])
    assert (code, out) == (1, "")
    assert "imagegateway: job job-f ended FAILURE: UPSTREAM_FAILURE: the model crashed" in err


@pytest.mark.network
def test_a_gateway_error_exits_1_with_its_message(fake: FakeGateway) -> None:
    fake.on(
        "POST",
        "/sd/text2image/v1",
        Reply(422, {"status": "FAILURE", "error": "invalid request: width: multiple of 8"}),
    )
    code, out, err = run(["generate", "--prompt", "x", "--width", "100", "--url", fake.url])
    assert (code, out) == (1, "")
    assert "imagegateway: the gateway answered 422: invalid request: width" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["generate"],
        ["generate", "--prompt", "x", "--lora", "no-weight"],
        ["generate", "--prompt", "x", "--lora", "id:heavy"],
        ["generate", "--prompt", "x", "--kind", "img2img"],
        ["generate", "--prompt", "x", "--samples", "two"],
        ["generate", "--prompt", "x", "--url", "localhost:3000"],
        ["status"],
        ["frobnicate"],
        [],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    assert "usage: imagegateway" in capsys.readouterr().err


@pytest.mark.network
def test_status_prints_the_job_and_finds_its_kind(fake: FakeGateway) -> None:
    fake.job("job-s", kind="image2image", pending_polls=0)
    code, out, _ = run(["status", "job-s", "--url", fake.url])
    assert code == 0
    lines = out.splitlines()
    assert lines[:3] == ["id        job-s", "kind      image2image", "status    SUCCESS"]
    assert any(line.startswith("image 0   image/png") for line in lines)
    assert "timings   total 1.50 s" in out


@pytest.mark.network
def test_status_of_a_failed_job_exits_1_and_json_is_the_gateways_answer(
    fake: FakeGateway,
) -> None:
    fake.job("job-f", pending_polls=0, failure=("CANCELLED", "cancelled by its owner"))
    code, out, _ = run(["status", "job-f", "--kind", "text2image", "--json", "--url", fake.url])
    assert code == 1
    assert json.loads(out) == {
        "status": "FAILURE",
        "id": "job-f",
        "error_code": "CANCELLED",
        "error": "cancelled by its owner",
    }


@pytest.mark.network
def test_status_of_an_unknown_job_exits_1(fake: FakeGateway) -> None:
    code, out, err = run(["status", "nope", "--url", fake.url])
    assert (code, out) == (1, "")
    assert "unknown or not yours" in err


@pytest.mark.network
def test_jobs_lists_one_line_per_job_and_the_next_page(fake: FakeGateway) -> None:
    fake.on(
        "GET",
        "/v1/jobs",
        Reply(
            200,
            {
                "jobs": [
                    {
                        "id": "j2",
                        "status": "SUCCESS",
                        "kind": "text2image",
                        "timings": {"created_at": "2026-01-02T00:00:00Z"},
                    },
                    {"id": "j1", "status": "FAILURE", "error_code": "CANCELLED"},
                ],
                "next_cursor": "next-page",
            },
        ),
    )
    code, out, err = run(["jobs", "--limit", "2", "--status", "SUCCESS", "--url", fake.url])
    assert code == 0
    assert out.splitlines() == [
        "j2  text2image   SUCCESS  2026-01-02T00:00:00Z",
        "j1  -            FAILURE  -  CANCELLED",
    ]
    assert "imagegateway jobs --cursor next-page" in err
    assert fake.seen[0].query == {"limit": ["2"], "status": ["SUCCESS"]}


@pytest.mark.network
def test_cancel_prints_the_cancelled_job(fake: FakeGateway) -> None:
    fake.on(
        "POST",
        "/v1/jobs/job-c/cancel",
        Reply(200, {"status": "FAILURE", "id": "job-c", "error_code": "CANCELLED", "error": "x"}),
    )
    code, out, _ = run(["cancel", "job-c", "--url", fake.url])
    assert code == 0
    assert "status    FAILURE" in out
    assert "error     CANCELLED: x" in out


@pytest.mark.network
def test_cancel_of_a_finished_job_exits_1(fake: FakeGateway) -> None:
    fake.on(
        "POST",
        "/v1/jobs/job-d/cancel",
        Reply(409, {"status": "SUCCESS", "id": "job-d", "error": "already ended"}),
    )
    code, _, err = run(["cancel", "job-d", "--url", fake.url])
    assert code == 1
    assert "a finished job is left unchanged" in err


@pytest.mark.network
def test_connection_refused_exits_1_saying_to_start_the_stack() -> None:
    code, _, err = run(["status", "j", "--url", "http://127.0.0.1:9"])
    assert code == 1
    assert "make run" in err


# ---------------------------------------------------------------------- progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def progress(status: str, polls: int, elapsed: float) -> Progress:
    return Progress(job=Job(id="job-1", status=status), polls=polls, elapsed=elapsed)


def test_piped_progress_is_plain_lines_when_the_status_changes() -> None:
    stream = io.StringIO()
    display = ProgressDisplay(stream, heartbeat=10)
    for polls, (status, elapsed) in enumerate(
        [("PENDING", 0.1), ("PENDING", 1.0), ("PENDING", 12.0), ("SUCCESS", 13.0)], start=1
    ):
        display(progress(status, polls, elapsed))
    display.finish()
    assert not display.live
    assert stream.getvalue().splitlines() == [
        "job job-1 PENDING after 0.1 s, no estimate yet",
        "job job-1 PENDING after 12.0 s, no estimate yet",  # still PENDING: every heartbeat
        "job job-1 SUCCESS after 13.0 s",
    ]
    assert "\r" not in stream.getvalue()
    assert "\x1b" not in stream.getvalue()


def test_progress_on_a_terminal_is_one_live_line() -> None:
    stream = Terminal()
    display = ProgressDisplay(stream)
    display(progress("PENDING", 1, 0.1))
    display(progress("PENDING", 2, 1.0))
    display(progress("SUCCESS", 3, 2.0))
    display.finish()
    written = stream.getvalue()
    assert display.live
    assert written.count("\r\x1b[K") == 3  # rewritten in place at every read
    assert written.count("\n") == 1  # and ended once
    assert written.endswith("job job-1 SUCCESS after 2.0 s (status read 3)\n")


def test_progress_says_the_gateways_eta_once_it_has_one() -> None:
    # Given a job the gateway has no estimate for, then one it expects done in about 20 s
    stream = io.StringIO()
    display = ProgressDisplay(stream, heartbeat=60)
    eta = (datetime.now(UTC) + timedelta(seconds=20.4)).isoformat()
    learned = {"status": "PENDING", "id": "job-1", "estimate": "learned", "estimated_done_at": eta}
    display(progress("PENDING", 1, 0.1))
    display(Progress(job=Job.from_view(learned), polls=2, elapsed=0.5))
    display(Progress(job=Job.from_view(learned), polls=3, elapsed=1.5))
    # Then the line says so as soon as it knows (not only at the next heartbeat), once
    lines = stream.getvalue().splitlines()
    assert lines[0] == "job job-1 PENDING after 0.1 s, no estimate yet"
    assert lines[1].startswith("job job-1 PENDING after 0.5 s, about 2")
    assert lines[1].endswith(" s left")
    assert len(lines) == 2


def test_a_jobs_eta_is_read_from_its_view() -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    view = {"status": "PENDING", "id": "j", "estimated_done_at": "2026-12-01T12:00:30+00:00"}
    assert Job.from_view(view).eta_text(now) == "about 30 s left"
    assert Job.from_view(view).eta_text(now + timedelta(seconds=31)) == "due now"
    assert Job.from_view({"status": "PENDING", "id": "j"}).eta_text(now) == "no estimate yet"
    assert Job.from_view({**view, "status": "SUCCESS"}).estimated_done_at is None


@pytest.mark.network
def test_usage_prints_the_day_and_the_budget(fake: FakeGateway) -> None:
    # Given a caller with 3 of its 5 daily images used
    usage = {
        "day": "2026-11-26",
        "images": 3,
        "budget": 5,
        "remaining": 2,
        "resets_at": "2026-11-27T00:00:00Z",
    }
    fake.on("GET", "/v1/usage", Reply(200, usage))
    # When it asks / Then it reads its day, its budget and the reset
    code, out, err = run(["usage", "--url", fake.url])
    assert code == 0, err
    assert "images    3" in out
    assert "budget    5 (remaining 2)" in out
    assert "2026-11-27T00:00:00Z" in out


@pytest.mark.network
def test_webhook_secret_prints_the_callers_own_secret(fake: FakeGateway) -> None:
    # Given a gateway that knows the caller's secret
    fake.on("GET", "/v1/webhooks/secret", Reply(200, {"secret": "whsec_" + "B" * 43}))
    # When it asks / Then stdout is the secret alone, for a receiver's configuration
    code, out, err = run(["webhook-secret", "--url", fake.url])
    assert code == 0, err
    assert out == "whsec_" + "B" * 43 + "\n"


@pytest.mark.network
def test_a_spent_budget_says_when_it_starts_again(fake: FakeGateway, tmp_path: Path) -> None:
    # Given a gateway that refuses the job: the caller's daily budget is spent
    refusal = {
        "status": "FAILURE",
        "error": "the daily budget of 3 images is spent",
        "error_code": "BUDGET_EXCEEDED",
        "resets_at": "2026-11-27T00:00:00Z",
    }
    fake.on("POST", "/sd/text2image/v1", Reply(429, refusal, {"Retry-After": "3600"}))
    # When a job is generated / Then exit 1, with the reset time and what to do
    code, _, err = run(["generate", "--prompt", "a fox", "--url", fake.url, "--out", str(tmp_path)])
    assert code == 1
    assert "429 BUDGET_EXCEEDED" in err
    assert "starts again at 2026-11-27T00:00:00Z" in err


@pytest.mark.network
def test_no_cache_and_strict_tokens_are_sent_as_headers(fake: FakeGateway, tmp_path: Path) -> None:
    fake.job("job-n", pending_polls=0)
    argv = ["generate", "--prompt", "a fox", "--seed", "7", "--no-cache", "--strict-tokens"]
    code, _, err = run([*argv, "--url", fake.url, "--out", str(tmp_path)])
    assert code == 0, err
    (submit,) = [seen for seen in fake.requests_to("/sd/text2image/v1") if seen.method == "POST"]
    assert submit.headers["cache-control"] == "no-cache"
    assert submit.headers["prefer"] == "strict-tokens"
