"""What a finished job tells its caller, held to the published schema (docs/events/): built
from job rows with in-memory collaborators, no AWS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from imagegateway.domain.errors import InvalidRequestError
from imagegateway.domain.events import Completion, Envelope
from imagegateway.domain.records import Callbacks, JobRecord
from imagegateway.platform.settings import Settings
from imagegateway.use_cases.completion import completion_of, refuse_request
from tests.support.event_schema import COMPLETED, REQUESTED, schema_errors, validator
from tests.support.fakes import FakeClock, FakeNotifier, FakePorts, fake_ports

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SHA = "ab" * 32


def deps(notifier: FakeNotifier | None = None) -> FakePorts:
    # The image store's fake presigns as https://images.s3.amazonaws.com/<key>?X-Amz-Signature=1
    return fake_ports(
        settings=Settings(jobs_table_name="jobs", images_bucket_name="images-bucket"),
        notifier=notifier or FakeNotifier(),
        clock=FakeClock(NOW),
    )


def record(**extra: Any) -> JobRecord:
    return JobRecord.model_validate(
        {
            "job_id": "job-1",
            "owner": "pipeline",
            "kind": "inpainting",
            "request": {"model_id": "sd1.5", "prompt": "p"},
            "created_at": NOW - timedelta(seconds=40),
            "updated_at": NOW,
            "deadline_at": NOW + timedelta(minutes=10),
            "expires_at": 0,
            **extra,
        }
    )


def detail_of(completion: Completion) -> dict[str, Any]:
    return completion.detail.model_dump(mode="json", exclude_none=True)


def test_a_succeeded_job_tells_its_images_with_presigned_urls_and_its_reference() -> None:
    # Given a job stored with two images, whose caller gave a reference
    images = [
        {
            "index": i,
            "key": f"jobs/job-1/{i}.png",
            "content_type": "image/png",
            "size": 9,
            "sha256": SHA,
        }
        for i in range(2)
    ]
    done = record(
        status="SUCCESS",
        images=images,
        accepted_at=NOW - timedelta(seconds=39),
        upstream_completed_at=NOW - timedelta(seconds=2),
        completed_at=NOW,
        callbacks={"reference": "order-42"},
    )
    # When its completion is built
    completion = completion_of(done, deps())
    # Then it is a Succeeded event whose detail validates against the published schema
    assert completion.detail_type == "Image Generation Succeeded"
    detail = detail_of(completion)
    assert schema_errors(COMPLETED, detail) == []
    assert detail["reference"] == "order-42"
    assert [image["bucket"] for image in detail["images"]] == ["images-bucket"] * 2
    assert detail["images"][1]["url"].startswith("https://images.s3.amazonaws.com/jobs/job-1/1.png")
    assert detail["timings"]["total_seconds"] == 40.0
    assert "error" not in detail


def test_a_failed_job_tells_its_code_and_message_and_no_images() -> None:
    failed = record(status="FAILURE", error_code="TIMED_OUT", error_message="too slow")
    detail = detail_of(completion_of(failed, deps()))
    assert schema_errors(COMPLETED, detail) == []
    assert (detail["status"], detail["error_code"], detail["error"]) == (
        "FAILURE",
        "TIMED_OUT",
        "too slow",
    )
    assert "images" not in detail
    assert "reference" not in detail


def test_a_refused_request_is_published_told_to_its_task_and_webhook_and_valid() -> None:
    # Given a request refused at intake, whose caller waits on a task token and a webhook
    notifier = FakeNotifier()
    callbacks = Callbacks(
        reference="r-1", task_token="tok", webhook_url="https://hooks.example.com/x"
    )
    error = InvalidRequestError("invalid request", details=[("request.width", "too wide")])
    # When it is refused
    completion = refuse_request(callbacks, error, deps(notifier), owner="iam:AIDAEXAMPLEOWNER0001")
    # Then one Failed event, valid, naming the field, and the task and the webhook are told
    assert notifier.published == [completion]
    detail = detail_of(completion)
    assert schema_errors(COMPLETED, detail) == []
    assert detail["error_code"] == "INVALID_REQUEST"
    assert detail["details"] == [{"field": "request.width", "message": "too wide"}]
    assert "job_id" not in detail
    assert notifier.answered == [("tok", completion)]
    assert notifier.webhooks == [("https://hooks.example.com/x", completion)]


def test_the_schema_rejects_a_success_without_images_and_a_failure_without_a_code() -> None:
    # The schema has teeth: the two shapes a consumer relies on are enforced
    assert schema_errors(COMPLETED, {"status": "SUCCESS", "job_id": "j", "kind": "text2image"})
    assert schema_errors(COMPLETED, {"status": "FAILURE", "job_id": "j", "error": "x"})


def test_the_envelope_schema_and_model_name_the_same_fields() -> None:
    # Given the published envelope schema and the model the intake parses with
    properties = set(validator(REQUESTED).schema["properties"])
    # Then they agree field for field, and a minimal envelope passes both
    assert properties == set(Envelope.model_fields)
    minimal = {"request": {"model_id": "sd1.5", "prompt": "p"}}
    assert schema_errors(REQUESTED, minimal) == []
    assert Envelope.model_validate(minimal).kind == "text2image"
    assert schema_errors(REQUESTED, {**minimal, "colour": "red"})
