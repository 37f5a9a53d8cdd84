"""What a job's end owes its callers, one named telling each: the completion event on the bus,
the answer to a waiting task, the webhook; for the job's own request and for every later request
folded into it. The job row keeps the names of those told (`JobRecord.told`), so whatever could
not be told at the ending (the bus, the webhook queue or Step Functions down) is told later, and
what was told is not told again."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from imagegateway.domain.records import Callbacks, JobRecord

Channel = Literal["event", "task", "webhook"]


@dataclass(frozen=True)
class Telling:
    """One thing to tell: on `channel`, to `callbacks` (the job's own, or a folded request's
    with its `variant`)."""

    channel: Channel
    callbacks: Callbacks
    variant: str = ""

    @property
    def name(self) -> str:
        return f"{self.channel}:{self.variant}" if self.variant else self.channel


def variant_of(callbacks: Callbacks) -> str:
    """The same callbacks, the same id suffix: a repeated webhook keeps its webhook-id."""
    text = callbacks.model_dump_json(exclude_none=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def tellings_of(record: JobRecord) -> list[Telling]:
    """Everything the job's end owes: its own completion event and callbacks, then each folded
    request's (an event of its own only when its reference is not the job's)."""
    own = record.callbacks or Callbacks()
    owed = [Telling("event", own), *_callbacks_tellings(own, "")]
    for folded in record.also_tell:
        variant = variant_of(folded)
        if folded.reference and folded.reference != own.reference:
            owed.append(Telling("event", folded, variant))
        owed.extend(_callbacks_tellings(folded, variant))
    return owed


def left_to_tell(record: JobRecord) -> list[Telling]:
    """What the job's end still owes (all of it before anything was told)."""
    told = record.told or frozenset()
    return [telling for telling in tellings_of(record) if telling.name not in told]


def _callbacks_tellings(callbacks: Callbacks, variant: str) -> list[Telling]:
    owed: list[Telling] = []
    if callbacks.task_token:
        owed.append(Telling("task", callbacks, variant))
    if callbacks.webhook_url:
        owed.append(Telling("webhook", callbacks, variant))
    return owed
