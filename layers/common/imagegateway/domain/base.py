"""What every domain model shares: the base model, a job's status and its kind."""

from __future__ import annotations

from enum import StrEnum

from pydantic import (
    BaseModel,
    ConfigDict,
)


class GatewayModel(BaseModel):
    """Every model here: its validator is built at its first use, not at import, so a function
    pays only for the models it uses (tens of ms of a cold start otherwise)."""

    model_config = ConfigDict(defer_build=True)


class JobStatus(StrEnum):
    PENDING = "PENDING"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"


class JobKind(StrEnum):
    """The upstream's SD 1.5 endpoints: one protocol, four request bodies."""

    TEXT2IMAGE = "text2image"
    IMAGE2IMAGE = "image2image"
    INPAINTING = "inpainting"
    CONTROLNET = "controlnet"

    @property
    def submit_path(self) -> str:
        return f"/sd/{self.value}/v1"

    def status_path(self, upstream_id: str) -> str:
        return f"/sd/{self.value}/v1/status/{upstream_id}"
