"""Use case, the workflow's loop: status checks, the next wait, and whether the deadline passed.

With `upstream_poll_stretch_seconds` > 0 one invocation keeps asking the upstream every
`upstream_poll_cadence_seconds` for up to that long (never past the invocation's own time nor
the job's deadline), so a finished job is noticed within about a second: a second of a small
function costs a fifteenth of one state transition, and each round trip through the state
machine costs three. With 0, one check per invocation and the state machine waits in between
(backing off x1.5 up to POLL_MAX_INTERVAL_SECONDS; a second in an Express machine, which bills
duration, not transitions).

In an Express machine an execution lives at most 5 minutes: past `express_hand_over_seconds`
the ticket asks for a new execution to go on (`hand_over`). A job that ended outside the
execution (cancelled) is not checked: the task raises JobEndedElsewhereError and the execution
ends quietly. A stretch looks at the row every ROW_LOOK_SECONDS, so it stops soon after a
cancel too (a Standard cancel stops the execution, but not an invocation already running).

A Retry-After longer than this function may sleep becomes the state machine's wait.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from imagegateway.domain.base import JobStatus
from imagegateway.domain.errors import (
    UPSTREAM_FAILURE,
    JobEndedElsewhereError,
    UpstreamProtocolError,
    UpstreamRateLimitedError,
)
from imagegateway.domain.image_requests import UpstreamAnswer
from imagegateway.domain.image_set import select_image_urls
from imagegateway.domain.polling import (
    capped_wait,
    deadline_passed,
    hand_over_due,
    next_wait_seconds,
)
from imagegateway.domain.records import JobRecord
from imagegateway.domain.tickets import Failure, JobTicket
from imagegateway.platform.observability import logger, metrics
from imagegateway.platform.time_budget import remaining_seconds
from imagegateway.use_cases.ports import Ports

# Time a last status check needs (connect + an answer that comes at once) before the invocation
# ends; the upstream's read timeout bounds a slow one, and it is cut to the budget anyway.
LAST_CHECK_SECONDS = 3.0
# The state machine's wait after an invocation that polled for its whole stretch (or, in an
# Express machine, between checks).
WAIT_AFTER_STRETCH_SECONDS = 1
# The most a check waits for a predicted check's time inside the function (the Wait state
# waited the whole seconds before it; a longer wait belongs there).
MAX_WAIT_IN_FUNCTION_SECONDS = 2.0
# How often a stretch looks at the job's row: a job cancelled meanwhile stops costing checks
# and function seconds within this long (one read per look, a hundredth of a cent per 1,000).
ROW_LOOK_SECONDS = 10


def check_job(ticket: JobTicket, deps: Ports) -> JobTicket:
    record = _still_pending(deps.jobs.for_ticket(ticket))
    upstream_id = ticket.upstream_id
    if not upstream_id:
        raise UpstreamProtocolError("the job has no upstream id to check")
    settings = deps.settings
    stretch = settings.upstream_poll_stretch_seconds
    stretch_ends = deps.clock() + timedelta(seconds=stretch)
    if ticket.execution_started_at is not None:  # Express: never past the hand-over time
        hand_over_at = ticket.execution_started_at + timedelta(
            seconds=settings.express_hand_over_seconds
        )
        stretch_ends = min(stretch_ends, hand_over_at)
    polls = ticket.polls
    # When a check last found the job PENDING (at first, the submit's acceptance): a job seen
    # done was done at most this long before (the dashboard's detection delay), and its shape
    # takes at least this long (the predicted first check learns it).
    pending_at = ticket.last_pending_at or record.accepted_at
    # A predicted check is not sent before its time (the Wait state waited whole seconds).
    _sleep_until(ticket.next_check_at, ticket, deps)
    ticket = ticket.model_copy(update={"next_check_at": None})
    row_looked_at = deps.clock()
    while True:
        if (deps.clock() - row_looked_at).total_seconds() >= ROW_LOOK_SECONDS:
            _still_pending(deps.jobs.get(ticket.job_id))
            row_looked_at = deps.clock()
        polls += 1
        # Every status call, answered or not (the operators' dashboard).
        metrics.add_metric(name="UpstreamStatusChecks", unit="Count", value=1)
        sent_at = deps.clock()
        try:
            answer = deps.upstream.status(record.kind, upstream_id)
        except UpstreamRateLimitedError as exc:
            asked = _asked_to_wait(ticket, polls, exc, deps.clock(), pending_at)
            return _handed_over_if_due(asked, deps.clock(), deps)
        now = deps.clock()
        if answer.status is JobStatus.PENDING:
            pending_at = sent_at
        if answer.status is not JobStatus.PENDING or deadline_passed(
            now=now, deadline_at=ticket.deadline_at
        ):
            break
        cadence = settings.upstream_poll_cadence_seconds
        next_check = _next_check(ticket, now, cadence)
        in_stretch = stretch > 0 and next_check <= stretch_ends
        # The check at the predicted done time, a moment away, is made here even without a
        # stretch (Express): a fraction of a second of this function costs less than a Wait
        # state's whole second and another invocation.
        predicted = (
            next_check == ticket.expected_done_at
            and (next_check - now).total_seconds() <= MAX_WAIT_IN_FUNCTION_SECONDS
        )
        if (
            not (in_stretch or predicted)
            or next_check >= ticket.deadline_at
            or remaining_seconds() < cadence + LAST_CHECK_SECONDS
        ):
            break
        deps.sleep((next_check - now).total_seconds())
    if polls > ticket.polls + 1:  # it waited: the job may have been cancelled meanwhile
        _still_pending(deps.jobs.get(ticket.job_id))
    return _checked(ticket, record, answer, polls, now, pending_at, deps)


def _next_check(ticket: JobTicket, now: datetime, cadence: float) -> datetime:
    """After a PENDING answer: the predicted done time if it comes before the next cadence
    tick (a job of a learned shape is asked at the time it should be done), else a tick on."""
    tick = now + timedelta(seconds=cadence)
    expected = ticket.expected_done_at
    if expected is not None and now < expected < tick:
        return expected
    return tick


def _sleep_until(moment: datetime | None, ticket: JobTicket, deps: Ports) -> None:
    """Wait out what is left before `moment` (a fraction of a second after the Wait state),
    never past the deadline nor the invocation's time for a last check."""
    if moment is None:
        return
    now = deps.clock()
    seconds = min(
        (moment - now).total_seconds(),
        (ticket.deadline_at - now).total_seconds(),
        remaining_seconds() - LAST_CHECK_SECONDS,
        MAX_WAIT_IN_FUNCTION_SECONDS,
    )
    if seconds > 0:
        deps.sleep(seconds)


def _still_pending(record: JobRecord) -> JobRecord:
    """A job that ended outside this execution (cancelled, or by a duplicate Express run) is no
    longer followed: the execution ends quietly, its caller was told by whoever ended it."""
    if record.status is not JobStatus.PENDING:
        raise JobEndedElsewhereError(
            f"the job already ended {record.status.value}", job_id=record.job_id
        )
    return record


def _handed_over_if_due(ticket: JobTicket, now: datetime, deps: Ports) -> JobTicket:
    if (
        ticket.status is JobStatus.PENDING
        and not ticket.deadline_passed
        and hand_over_due(
            started_at=ticket.execution_started_at,
            now=now,
            wait_seconds=ticket.wait_seconds,
            hand_over_seconds=deps.settings.express_hand_over_seconds,
        )
    ):
        return ticket.handed_over()
    return ticket


def _asked_to_wait(
    ticket: JobTicket,
    polls: int,
    exc: UpstreamRateLimitedError,
    now: datetime,
    pending_at: datetime | None,
) -> JobTicket:
    # A transient limit fails nothing: the state machine waits (capped by the deadline).
    wait = capped_wait(exc.retry_after or 1, now=now, deadline_at=ticket.deadline_at)
    logger.info("the upstream asked us to wait", extra={"wait_seconds": wait})
    return ticket.model_copy(
        update={
            "status": JobStatus.PENDING,
            "polls": polls,
            "wait_seconds": wait,
            "deadline_passed": deadline_passed(now=now, deadline_at=ticket.deadline_at),
            "last_pending_at": pending_at,
        }
    )


def _checked(
    ticket: JobTicket,
    record: JobRecord,
    answer: UpstreamAnswer,
    polls: int,
    now: datetime,
    pending_at: datetime | None,
    deps: Ports,
) -> JobTicket:
    settings = deps.settings
    expected = ticket.expected_done_at
    if (
        settings.checks_every_second
        and answer.status is JobStatus.PENDING
        and expected is not None
        and expected > now
    ):
        # A learned shape, asked once before it should be done: the next check at that time
        # (the Wait state's whole seconds, the check function the fraction left).
        seconds = max(1, math.floor((expected - now).total_seconds()))
        wait = capped_wait(seconds, now=now, deadline_at=ticket.deadline_at)
        ticket = ticket.model_copy(update={"next_check_at": expected})
    elif settings.checks_every_second:
        wait = capped_wait(WAIT_AFTER_STRETCH_SECONDS, now=now, deadline_at=ticket.deadline_at)
    else:
        wait = next_wait_seconds(
            polls=polls,
            now=now,
            deadline_at=ticket.deadline_at,
            initial=settings.poll_interval_seconds,
            maximum=settings.poll_max_interval_seconds,
        )
    update: dict[str, object] = {
        "status": answer.status,
        "polls": polls,
        "deadline_passed": deadline_passed(now=now, deadline_at=ticket.deadline_at),
        "wait_seconds": wait,
        "last_pending_at": pending_at,
    }
    if answer.status is JobStatus.SUCCESS:
        if not answer.download_urls:
            raise UpstreamProtocolError("the upstream reported SUCCESS without download_urls")
        update |= {
            "download_urls": select_image_urls(answer.download_urls, ticket.expected_images),
            "upstream_completed_at": now,
        }
        if pending_at is not None:
            # An upper bound: the upstream finished after the last PENDING answer.
            delay = max(0.0, (now - pending_at).total_seconds())
            metrics.add_metric(name="DetectionDelay", unit="Seconds", value=round(delay, 3))
    elif answer.status is JobStatus.FAILURE:
        update["failure"] = Failure(
            code=UPSTREAM_FAILURE, message=answer.error or "the upstream reported FAILURE"
        )
    logger.info("checked the upstream", extra={"upstream_status": answer.status, "polls": polls})
    return _handed_over_if_due(ticket.model_copy(update=update), now, deps)
