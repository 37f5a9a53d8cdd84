"""One validated settings model read from the environment, cached for the life of the process."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

from imagegateway.domain.errors import ConfigurationError


class Settings(BaseModel):
    """Field names are the lower-cased environment variable names."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    jobs_table_name: str = Field(min_length=3)
    images_bucket_name: str = Field(min_length=3)
    state_machine_arn: str = ""
    upstream_base_url: HttpUrl = HttpUrl("https://api.imagepipeline.io")
    upstream_api_key_secret_name: str = ""
    # Cached secret reads: the key rarely rotates, and each read costs a Secrets Manager call.
    upstream_api_key_max_age_seconds: int = Field(default=300, ge=0)
    upstream_connect_timeout_seconds: float = Field(default=3.05, gt=0)
    # Status checks: the upstream answers them at once; a slow one is retried inside the budget.
    upstream_read_timeout_seconds: float = Field(default=10.0, gt=0)
    # The submit POST: generation may be slow to acknowledge, and the POST is never repeated,
    # so it gets most of the SubmitUpstream task's time (bounded by it at run time).
    upstream_submit_read_timeout_seconds: float = Field(default=100.0, gt=0)
    job_deadline_seconds: int = Field(default=900, ge=1, le=3000)
    poll_interval_seconds: int = Field(default=5, ge=1, le=300)
    poll_max_interval_seconds: int = Field(default=30, ge=1, le=300)
    # In-function polling (check_job): how long one status-check invocation keeps asking the
    # upstream (0 = once per invocation), and how often. Bounded by the invocation's own time.
    upstream_poll_stretch_seconds: int = Field(default=0, ge=0, le=900)
    upstream_poll_cadence_seconds: float = Field(default=1.0, ge=0.2, le=30)
    # The job state machine's type (the template's WorkflowType). EXPRESS executions live at
    # most 5 minutes and cannot be described or stopped: the workflow hands a job over to a new
    # execution after `express_hand_over_seconds`, and the reconciler judges by time.
    workflow_type: Literal["STANDARD", "EXPRESS"] = "STANDARD"
    express_hand_over_seconds: int = Field(default=150, ge=5, le=200)
    presigned_url_ttl_seconds: int = Field(default=3600, ge=60, le=604800)
    job_retention_days: int = Field(default=30, ge=1, le=3650)
    # Room for the largest picture a request can ask for: 1536 px sides doubled by Hi-res Fix or
    # a 2x upscale, even as an uncompressed RGBA PNG (36 MiB); the store step streams it.
    max_image_bytes: int = Field(default=48 * 1024 * 1024, ge=1024)
    # Hosts the store step may fetch images from ("*.example.com" matches its subdomains).
    # Read from a comma-separated list (the template parameter's form).
    download_allowed_hosts: tuple[str, ...] = ("imagepipeline.io", "*.imagepipeline.io")
    # Only for the local stack and tests (the fake upstream serves http on 127.0.0.1): allows
    # plain http and private addresses. Never set when deployed.
    allow_insecure_downloads: bool = False
    idempotency_table_name: str = ""
    idempotency_expiry_seconds: int = Field(default=24 * 3600, ge=60)
    reconcile_margin_seconds: int = Field(default=120, ge=0)
    # A job whose row is this old and that no workflow run has reached is started by the
    # reconciler (its submit died before StartExecution); with a run every minute, within
    # two minutes of its row.
    start_grace_seconds: int = Field(default=45, ge=1, le=600)
    # An ending not all told this long after it is told by the reconciler (its teller, which
    # tells right after the ending write, is done by then, or failed).
    tell_grace_seconds: int = Field(default=30, ge=0, le=3600)
    # A job the reconciler fails on this many runs in a row is ended (RECONCILE_FAILED).
    reconcile_max_attempts: int = Field(default=5, ge=1)
    image_download_workers: int = Field(default=4, ge=1, le=16)
    # Event-driven callers: the bus completion events go to (and requests come from), the queue
    # webhook deliveries wait on, and the secret webhooks are signed with (Standard Webhooks).
    event_bus_name: str = ""
    # The queue only the bus's request rule may send to: its messages belong to the account the
    # event names, every other queue's to their SQS sender.
    bus_request_queue_arn: str = ""
    webhook_queue_url: str = ""
    webhook_signing_secret_name: str = ""
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # API keys (`API-Key` header, the upstream's own): the table of their hashes, and whether the
    # keyed API accepts them at all (AuthMode: API_KEY) or refuses every key (IAM only).
    api_keys_table_name: str = ""
    auth_mode: Literal["IAM", "API_KEY"] = "API_KEY"

    # Per-caller daily budgets (CallerDailyImageBudget; empty: unlimited), checked against the
    # usage table, which also keeps the ledger of upstream calls.
    caller_daily_image_budget: int | None = Field(default=None, ge=0)
    usage_table_name: str = ""
    # The fixed-seed result cache (ResultCache): off, every request is generated.
    result_cache: bool = True
    # The predicted first check (domain.upstream_durations): a job of a shape the gateway has
    # learned is first asked about when it can plausibly be done. Off: today's schedule for all.
    predicted_first_check: bool = True

    @property
    def checks_every_second(self) -> bool:
        """Whether the status loop checks about once a second (in-function polling, or an
        Express machine, which bills duration, not transitions), instead of backing off."""
        return self.upstream_poll_stretch_seconds > 0 or self.workflow_type == "EXPRESS"

    @field_validator("upstream_base_url", mode="before")
    @classmethod
    def _strip_trailing_slash(cls, value: object) -> object:
        return value.rstrip("/") if isinstance(value, str) else value

    @field_validator("caller_daily_image_budget", mode="before")
    @classmethod
    def _empty_is_unlimited(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("download_allowed_hosts", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(host.strip().lower() for host in value.split(",") if host.strip())
        return value

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Settings:
        known = cls.model_fields.keys()
        return cls.model_validate({k.lower(): v for k, v in environ.items() if k.lower() in known})

    def require(self, *fields: str) -> Settings:
        """The settings a function cannot work without, present: else a ConfigurationError naming
        their environment variables (a typo in `fields` is an AttributeError, not a pass)."""
        missing = [name.upper() for name in fields if not getattr(self, name)]
        if missing:
            raise ConfigurationError(f"{', '.join(missing)} not set for this function")
        return self

    @property
    def upstream_base(self) -> str:
        return str(self.upstream_base_url).rstrip("/")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_environment(os.environ)
