"""How requests to the gateway are authenticated, chosen from the arguments and the environment:

1. an API key (`api_key=`, else `IMAGEGATEWAY_API_KEY`): header `API-Key: <key>`, the
   upstream's own header;
2. else AWS SigV4 for `execute-api`, when botocore's standard chain finds credentials (env
   variables, AWS_PROFILE / shared files, SSO, container or instance roles) or `aws_auth=True`;
   the region is `region=`, else AWS_REGION / AWS_DEFAULT_REGION, else the one in an
   `execute-api.<region>.amazonaws.com` URL, else the profile's, else us-east-1;
3. else nothing (the local stack, which runs unsigned requests as a local caller).

Only requests to the gateway carry credentials: images are fetched through their presigned
URLs with no auth header at all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Protocol
from urllib.parse import urlsplit

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError

from imagegateway_client.errors import ImageGatewayError

API_KEY_VARIABLE = "IMAGEGATEWAY_API_KEY"
API_KEY_HEADER = "API-Key"
SERVICE = "execute-api"
DEFAULT_REGION = "us-east-1"
_EXECUTE_API_HOST = re.compile(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")


class Auth(Protocol):
    """Adds its headers to one request (`headers` are the ones the request already has)."""

    @property
    def description(self) -> str: ...

    def sign(
        self, method: str, url: str, body: bytes, headers: Mapping[str, str]
    ) -> dict[str, str]:
        """The headers to add."""
        ...


class NoAuth:
    description = "no credentials"

    def sign(
        self, method: str, url: str, body: bytes, headers: Mapping[str, str]
    ) -> dict[str, str]:
        return {}


class ApiKeyAuth:
    def __init__(self, key: str, source: str = "api_key") -> None:
        self._key = key
        self.description = f"an API key ({source})"

    def sign(
        self, method: str, url: str, body: bytes, headers: Mapping[str, str]
    ) -> dict[str, str]:
        return {API_KEY_HEADER: self._key}

    def __repr__(self) -> str:
        return "ApiKeyAuth(<hidden>)"


class SigV4RequestAuth:
    """SigV4 for API Gateway (`execute-api`) with botocore's signer: Authorization,
    X-Amz-Date and, for temporary credentials, X-Amz-Security-Token."""

    def __init__(self, credentials: Credentials, region: str) -> None:
        self._credentials = credentials
        self.region = region
        self.description = f"AWS SigV4 ({SERVICE}, {region})"

    def sign(
        self, method: str, url: str, body: bytes, headers: Mapping[str, str]
    ) -> dict[str, str]:
        # Refreshable credentials (SSO, roles) are frozen per request, so a long wait keeps
        # signing with valid ones.
        frozen = self._credentials.get_frozen_credentials()
        if not frozen.access_key or not frozen.secret_key:
            raise ImageGatewayError("the AWS credentials botocore found have no key: renew them")
        credentials = Credentials(frozen.access_key, frozen.secret_key, frozen.token)
        request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
        SigV4Auth(credentials, SERVICE, self.region).add_auth(request)
        return {
            name: value
            for name, value in request.headers.items()
            if name.lower() in ("authorization", "x-amz-date", "x-amz-security-token")
        }


def region_for(url: str, environ: Mapping[str, str], profile_region: str | None) -> str:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        value = environ.get(name, "").strip()
        if value:
            return value
    found = _EXECUTE_API_HOST.search(urlsplit(url).hostname or "")
    if found:
        return found.group(1)
    return profile_region or DEFAULT_REGION


def resolve_auth(
    url: str,
    *,
    api_key: str | None,
    aws_auth: bool | None,
    region: str | None,
    environ: Mapping[str, str],
) -> Auth:
    """The request authentication the arguments and the environment ask for (module doc)."""
    if api_key:
        return ApiKeyAuth(api_key)
    if api_key is None and aws_auth is None and environ.get(API_KEY_VARIABLE, "").strip():
        return ApiKeyAuth(environ[API_KEY_VARIABLE].strip(), API_KEY_VARIABLE)
    if aws_auth is False:
        return NoAuth()
    try:
        session = botocore.session.Session()
        credentials = session.get_credentials()
        profile_region = session.get_config_variable("region")
    except BotoCoreError as exc:
        if aws_auth:
            raise ImageGatewayError(f"could not read AWS credentials: {exc}") from exc
        return NoAuth()
    if credentials is None:
        if aws_auth:
            raise ImageGatewayError(
                "aws_auth=True but botocore found no AWS credentials: set AWS_PROFILE, or "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where a role is available"
            )
        return NoAuth()
    chosen = region or region_for(url, environ, profile_region)
    return SigV4RequestAuth(credentials, chosen)
