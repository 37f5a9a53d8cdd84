"""template.yaml as the local stack reads it: its resources by type, its HTTP API's routes; the
local account, region and stack name.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

from cfnlint.decode import cfn_yaml

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
ACCOUNT = "123456789012"
REGION = "us-east-1"
STACK = "imagegw-local"


@cache
def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    loaded: dict[str, Any] = cfn_yaml.load(str(path))
    return loaded


def resources_of_type(template: Mapping[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in template["Resources"].items()
        if resource.get("Type") == kind
    }


# --- the HTTP API's routes ------------------------------------------------------------------

DEFAULT_ROUTE = "$default"


class HttpRoute(NamedTuple):
    """One route of the HTTP API, as a function's `HttpApi` event declares it."""

    method: str  # upper case; "ANY" matches every method
    path: str  # the template's path, e.g. /sd/{kind}/v1/status/{job_id}; "$default" for catch-all
    function: str  # the function's logical id

    @property
    def route_key(self) -> str:
        return DEFAULT_ROUTE if self.path == DEFAULT_ROUTE else f"{self.method} {self.path}"


def http_api_routes(template: Mapping[str, Any] | None = None) -> list[HttpRoute]:
    """Every route the template's functions declare with events of type HttpApi, once: the IAM
    API and the keyed API serve the same routes with the same functions, and the local server
    serves both (auth per request). An event with neither Path nor Method is the API's $default
    route (SAM's rule)."""
    template = template or load_template()
    routes: dict[str, HttpRoute] = {}
    for name, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        events = resource.get("Properties", {}).get("Events") or {}
        for event in events.values():
            if event.get("Type") != "HttpApi":
                continue
            props = event.get("Properties") or {}
            if "Path" not in props and "Method" not in props:
                route = HttpRoute("ANY", DEFAULT_ROUTE, str(name))
            else:
                method = str(props.get("Method", "ANY")).upper()
                if method == "X-AMAZON-APIGATEWAY-ANY-METHOD":
                    method = "ANY"
                route = HttpRoute(method, str(props.get("Path", "/")), str(name))
            known = routes.setdefault(route.route_key, route)
            if known.function != route.function:
                raise ValueError(f"{route.route_key} goes to {known.function} and {route.function}")
    return list(routes.values())
