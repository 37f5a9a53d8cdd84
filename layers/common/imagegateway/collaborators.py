"""What the use cases work with, built once per cold start and passed in (never reached for), so
unit tests hand them in-memory fakes instead."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from imagegateway.images import ImageStore
from imagegateway.jobs import JobStore
from imagegateway.notifications import Notifier
from imagegateway.settings import Settings, get_settings
from imagegateway.upstream import UpstreamClient
from imagegateway.workflow import Workflow


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Collaborators:
    settings: Settings
    jobs: JobStore
    upstream: UpstreamClient
    images: ImageStore
    workflow: Workflow
    notifier: Notifier
    clock: Callable[[], datetime] = utcnow
    # How a use case waits (check_job between status checks); unit tests pass a fake clock's.
    sleep: Callable[[float], None] = time.sleep


@lru_cache(maxsize=1)
def collaborators() -> Collaborators:
    settings = get_settings()
    return Collaborators(
        settings=settings,
        jobs=JobStore(settings),
        upstream=UpstreamClient(settings),
        images=ImageStore(settings),
        workflow=Workflow(settings.state_machine_arn),
        notifier=Notifier(settings),
    )
