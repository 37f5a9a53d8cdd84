"""Each owner's own webhook secret (Standard Webhooks `whsec_...`), derived from the stack's one
master secret (Secrets Manager, `WebhookSigningSecret`), so no secret is stored per owner and
none is ever shared by two owners:

    owner secret = whsec_ + base64(HMAC-SHA256(master key, "imagepipeline-gateway webhook
                   secret v1" NUL owner))

Knowing one owner's secret tells nothing of another's (HMAC is a PRF) nor of the master.

Rotation is the master's: rotate `WebhookSigningSecret` in Secrets Manager (a new AWSCURRENT
version; the old one becomes AWSPREVIOUS). While an AWSPREVIOUS version exists every webhook
carries two signatures (Standard Webhooks allows several in one header, space-separated), one
by each owner's new secret and one by its old, so receivers move to the new secret (`GET
/v1/webhooks/secret`) at their own pace; removing the AWSPREVIOUS label ends the overlap.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable

from imagegateway.domain.errors import ConfigurationError
from imagegateway.platform.observability import logger
from imagegateway.platform.settings import Settings

SECRET_PREFIX = "whsec_"  # noqa: S105 (the prefix of a secret, not one)
SECRET_MAX_AGE_SECONDS = 300
_DERIVATION_LABEL = b"imagepipeline-gateway webhook secret v1\x00"
PREVIOUS_STAGE = "AWSPREVIOUS"


def signing_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: `whsec_<base64>` or the bare base64 (padding
    optional, as the reference libraries read it)."""
    encoded = secret.strip().removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigurationError("the webhook signing secret is not base64 (whsec_...)") from exc
    if not key:
        raise ConfigurationError("the webhook signing secret is empty")
    return key


def webhook_signing_secret(settings: Settings) -> str:
    """The signing secret from Secrets Manager (cached by Powertools). Never logged."""
    if not settings.webhook_signing_secret_name:
        raise ConfigurationError("WEBHOOK_SIGNING_SECRET_NAME is not set")
    # Powertools' parameters utility imports boto3 and all its providers: loaded at first read.
    from aws_lambda_powertools.utilities import parameters

    try:
        raw = parameters.get_secret(
            settings.webhook_signing_secret_name, max_age=SECRET_MAX_AGE_SECONDS
        )
    except parameters.GetParameterError as exc:
        raise ConfigurationError("the webhook signing secret cannot be read") from exc
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def owner_secret(master: str, owner: str) -> str:
    """The owner's `whsec_` secret derived from the master secret (either form of it)."""
    digest = hmac.new(
        signing_key(master), _DERIVATION_LABEL + owner.encode(), hashlib.sha256
    ).digest()
    return SECRET_PREFIX + base64.b64encode(digest).decode()


class WebhookSecrets:
    """Reads the master secret (cached SECRET_MAX_AGE_SECONDS, as Powertools caches it) and
    derives each owner's. `read_master` and `read_previous` are seams for tests."""

    def __init__(
        self,
        settings: Settings,
        *,
        read_master: Callable[[], str] | None = None,
        read_previous: Callable[[], str | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._read_master = read_master or (lambda: webhook_signing_secret(settings))
        self._read_previous = read_previous or self._previous_from_secrets_manager
        self._clock = clock
        self._previous: tuple[float, str | None] | None = None

    def secret_for(self, owner: str) -> str:
        """The owner's current secret: what `GET /v1/webhooks/secret` answers."""
        return owner_secret(self._read_master(), owner)

    def signing_secrets_for(self, owner: str) -> list[str]:
        """Every secret the owner's webhooks are signed with: the current one, and the one
        before it while a rotation overlaps."""
        secrets = [self.secret_for(owner)]
        previous = self._cached_previous()
        if previous is not None:
            older = owner_secret(previous, owner)
            if older not in secrets:
                secrets.append(older)
        return secrets

    def _cached_previous(self) -> str | None:
        now = self._clock()
        if self._previous is None or now - self._previous[0] >= SECRET_MAX_AGE_SECONDS:
            self._previous = (now, self._read_previous())
        return self._previous[1]

    def _previous_from_secrets_manager(self) -> str | None:
        # A provider of its own: Powertools caches by name only, so the AWSPREVIOUS read would
        # otherwise be answered with the cached AWSCURRENT value (and the other way round).
        from aws_lambda_powertools.utilities.parameters import GetParameterError, SecretsProvider

        if not self._settings.webhook_signing_secret_name:
            raise ConfigurationError("WEBHOOK_SIGNING_SECRET_NAME is not set")
        try:
            raw = SecretsProvider().get(
                self._settings.webhook_signing_secret_name,
                max_age=SECRET_MAX_AGE_SECONDS,
                VersionStage=PREVIOUS_STAGE,
            )
        except GetParameterError:
            # No rotation yet (no AWSPREVIOUS version), or unreadable: sign with the current.
            logger.debug("no previous webhook signing secret")
            return None
        return raw.decode() if isinstance(raw, bytes) else str(raw)
