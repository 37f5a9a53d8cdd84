"""Use case, the workflow's loop: one status check, the next wait, and whether the deadline
passed. A Retry-After longer than this function may sleep becomes the state machine's wait."""

from __future__ import annotations

from imagegateway.collaborators import Collaborators
from imagegateway.errors import UPSTREAM_FAILURE, UpstreamProtocolError, UpstreamRateLimitedError
from imagegateway.image_set import select_image_urls
from imagegateway.models import Failure, JobStatus, JobTicket
from imagegateway.observability import logger
from imagegateway.polling import capped_wait, deadline_passed, next_wait_seconds


def check_job(ticket: JobTicket, deps: Collaborators) -> JobTicket:
    record = deps.jobs.for_ticket(ticket)
    if not ticket.upstream_id:
        raise UpstreamProtocolError("the job has no upstream id to check")
    polls = ticket.polls + 1
    try:
        answer = deps.upstream.status(record.kind, ticket.upstream_id)
    except UpstreamRateLimitedError as exc:
        # A transient limit fails nothing: the state machine waits (capped by the deadline).
        now = deps.clock()
        wait = capped_wait(exc.retry_after or 1, now=now, deadline_at=ticket.deadline_at)
        logger.info("the upstream asked us to wait", extra={"wait_seconds": wait})
        return ticket.model_copy(
            update={
                "status": JobStatus.PENDING,
                "polls": polls,
                "wait_seconds": wait,
                "deadline_passed": deadline_passed(now=now, deadline_at=ticket.deadline_at),
            }
        )
    now = deps.clock()
    update: dict[str, object] = {
        "status": answer.status,
        "polls": polls,
        "deadline_passed": deadline_passed(now=now, deadline_at=ticket.deadline_at),
        "wait_seconds": next_wait_seconds(
            polls=polls,
            now=now,
            deadline_at=ticket.deadline_at,
            initial=deps.settings.poll_interval_seconds,
            maximum=deps.settings.poll_max_interval_seconds,
        ),
    }
    if answer.status is JobStatus.SUCCESS:
        if not answer.download_urls:
            raise UpstreamProtocolError("the upstream reported SUCCESS without download_urls")
        update |= {
            "download_urls": select_image_urls(answer.download_urls, ticket.expected_images),
            "upstream_completed_at": now,
        }
    elif answer.status is JobStatus.FAILURE:
        update["failure"] = Failure(
            code=UPSTREAM_FAILURE, message=answer.error or "the upstream reported FAILURE"
        )
    logger.info("checked the upstream", extra={"upstream_status": answer.status, "polls": polls})
    return ticket.model_copy(update=update)
