"""The predicted first check over the local stack, HTTP only: after a few jobs of one shape, the
next jobs of that shape are seen within a second of the upstream finishing with at most 3 status
GETs each, and their status shows an ETA within a few seconds of the truth; a shape never seen
keeps today's schedule (a GET a second) and its delay. The fake upstream takes a scripted time
per model id and counts each job's status GETs (`/__fake__/stats`)."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any

from tests.e2e.conftest import Gateway

UPSTREAM_SECONDS = 6
LEARNING_JOBS = 3


def submitted(gateway: Gateway, model_id: str, prompt: str) -> dict[str, Any]:
    body = {"model_id": model_id, "prompt": prompt}
    response = gateway.submit(body, headers={"Content-Type": "application/json"})
    assert response.status_code == 202, response.text
    answer: dict[str, Any] = response.json()
    return answer


def pending_eta(gateway: Gateway, job_id: str) -> tuple[str | None, str | None]:
    """The job's estimate once the upstream has accepted it (the view's `estimate` and
    `estimated_done_at` while PENDING)."""
    for _ in range(40):
        view = gateway.status(job_id).json()
        if view["status"] != "PENDING" or (view.get("timings") or {}).get("accepted_at"):
            return view.get("estimate"), view.get("estimated_done_at")
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} was not accepted upstream")


def upstream_jobs_by_prompt(gateway: Gateway) -> dict[str, dict[str, Any]]:
    jobs = gateway.upstream_stats()["jobs"].values()
    return {job["request"]["prompt"]: job for job in jobs if "prompt" in job.get("request", {})}


def seen_after_done(view: dict[str, Any], upstream_job: dict[str, Any]) -> float:
    """Seconds from the fake's completion to the gateway's noticing it (its SUCCESS check)."""
    seen = datetime.fromisoformat(view["timings"]["upstream_completed_at"]).timestamp()
    return float(seen - upstream_job["completed_at"])


def test_a_learned_shape_is_checked_when_it_can_be_done_and_shows_an_eta(
    gateway: Gateway,
) -> None:
    run = uuid.uuid4().hex[:8]
    learned, unseen = f"eta-learned-{run}", f"eta-unseen-{run}"
    for model_id in (learned, unseen):
        gateway.script({"model_id": model_id, "completes_after_seconds": UPSTREAM_SECONDS})
    # Given a few jobs of one shape that the gateway followed to the end
    learning = [submitted(gateway, learned, f"learn {i} {run}") for i in range(LEARNING_JOBS)]
    assert all(answer["estimate"] == "none" for answer in learning)
    for answer in learning:
        assert gateway.wait(answer["id"], timeout=30)["status"] == "SUCCESS"
    # When two more jobs of that shape and one of a shape never seen are submitted together
    prompts = {"again 0": learned, "again 1": learned, "new": unseen}
    answers = {
        prompt: submitted(gateway, model, f"{prompt} {run}") for prompt, model in prompts.items()
    }
    etas = {prompt: pending_eta(gateway, answer["id"]) for prompt, answer in answers.items()}
    views = {prompt: gateway.wait(answer["id"], timeout=30) for prompt, answer in answers.items()}
    upstream = upstream_jobs_by_prompt(gateway)
    # Then the learned shape's jobs showed an ETA within a few seconds of the truth, were seen
    # within a second of finishing, with at most 3 status GETs each
    for prompt in ("again 0", "again 1"):
        view, job = views[prompt], upstream[f"{prompt} {run}"]
        assert answers[prompt]["estimate"] == "learned"
        estimate, eta = etas[prompt]
        assert estimate == "learned", etas
        assert eta is not None
        assert abs(datetime.fromisoformat(eta).timestamp() - job["completed_at"]) < 3
        assert view["status"] == "SUCCESS"
        assert seen_after_done(view, job) < 1.0, (prompt, seen_after_done(view, job))
        assert job["status_checks"] <= 3, job["status_checks"]
    # And the unseen shape had no ETA and kept today's schedule: a GET a second, seen within
    # about a second
    new_view, new_job = views["new"], upstream[f"new {run}"]
    assert answers["new"]["estimate"] == "none"
    assert etas["new"] == ("none", None)
    assert new_view["status"] == "SUCCESS"
    assert new_job["status_checks"] >= UPSTREAM_SECONDS - 1
    assert seen_after_done(new_view, new_job) < 1.5
