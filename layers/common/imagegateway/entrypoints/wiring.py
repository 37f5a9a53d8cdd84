"""What the use cases work with (their ports, `use_cases.ports.Ports`), built once per cold start
and passed in (never reached for), so unit tests hand them in-memory fakes instead.

Each collaborator is built, and its module imported, when a use case first touches it: a
function imports and builds only what its operation uses (the status check never loads the image
store's S3 transfer machinery, the authorizer none of them)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING

from imagegateway.platform.settings import Settings, get_settings

if TYPE_CHECKING:
    from imagegateway.adapters.image_store import ImageStore
    from imagegateway.adapters.job_store import JobStore
    from imagegateway.adapters.notifier import Notifier
    from imagegateway.adapters.upstream_client import UpstreamClient
    from imagegateway.adapters.upstream_durations import UpstreamDurations
    from imagegateway.adapters.usage_store import UsageStore
    from imagegateway.adapters.webhook_secrets import WebhookSecrets
    from imagegateway.adapters.workflow import Workflow


class Collaborators:
    """The settings, the stores and clients, the clock: each store or client is built from the
    settings the first time a use case touches it. (Unit tests hand use cases the shared fakes,
    `tests/support/fakes.fake_ports`, instead of this.)"""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def clock(self) -> datetime:
        return datetime.now(UTC)

    # How a use case waits (check_job between status checks, a long poll).
    sleep = staticmethod(time.sleep)

    @cached_property
    def jobs(self) -> JobStore:
        from imagegateway.adapters.job_store import JobStore

        return JobStore(self.settings)

    @cached_property
    def upstream(self) -> UpstreamClient:
        from imagegateway.adapters.upstream_client import UpstreamClient

        return UpstreamClient(self.settings)

    @cached_property
    def images(self) -> ImageStore:
        from imagegateway.adapters.image_store import ImageStore

        return ImageStore(self.settings)

    @cached_property
    def workflow(self) -> Workflow:
        from imagegateway.adapters.workflow import Workflow

        settings = self.settings
        return Workflow(settings.state_machine_arn, express=settings.workflow_type == "EXPRESS")

    @cached_property
    def notifier(self) -> Notifier:
        from imagegateway.adapters.notifier import Notifier

        return Notifier(self.settings)

    @cached_property
    def usage(self) -> UsageStore:
        from imagegateway.adapters.usage_store import UsageStore

        return UsageStore(self.settings)

    @cached_property
    def webhook_secrets(self) -> WebhookSecrets:
        from imagegateway.adapters.webhook_secrets import WebhookSecrets

        return WebhookSecrets(self.settings)

    @cached_property
    def durations(self) -> UpstreamDurations:
        from imagegateway.adapters.upstream_durations import UpstreamDurations

        return UpstreamDurations(self.settings)

    def require_upstream_key(self) -> None:
        # Its own module: the submit functions check the key without the upstream client.
        from imagegateway.adapters.upstream_key import upstream_api_key

        upstream_api_key(self.settings)


@lru_cache(maxsize=1)
def collaborators() -> Collaborators:
    return Collaborators(get_settings())
