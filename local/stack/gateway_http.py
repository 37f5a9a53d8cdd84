"""The HTTP API of template.yaml, served on this machine (dev only, never deployed).

Each request becomes an API Gateway HTTP API event (payload format 2.0) for the function the
template routes it to, and the function's answer becomes the HTTP response, as API Gateway
would shape it. Routes come from the functions' `HttpApi` events (`http_api_routes`), never
from a list kept here.

Authentication: the deployed API takes IAM-signed requests only, and the functions read the
caller from `requestContext.authorizer.iam.userId`. Locally nothing is signed: every request
is from the local account itself (`arn:aws:iam::<account>:root`, the principal local queue and
bus requests come from too), unless it carries the header `X-Local-Caller: <name>`, which makes
it `arn:aws:iam::<account>:user/<name>` (honoured only by this local server, to try what another
caller sees; local/aws/principals.py). The header is not passed on.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import traceback
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

from local.aws.principals import CALLER_HEADER, local_principal, unique_id_of
from local.aws.template import ACCOUNT, DEFAULT_ROUTE, HttpRoute
from local.http_server import BackgroundServer, OwnedServer

# API Gateway's own payload limit.
MAX_BODY_BYTES = 10 * 1024 * 1024
API_ID = "local"

# Runs the route's function with the event and returns its answer (raises if the function fails).
Invoke = Callable[[HttpRoute, dict[str, Any]], Any]
# Told of every request the gateway answers without a function (no route, bad caller...).
Log = Callable[[str], None]


# --------------------------------------------------------------------------- routes


@dataclass(frozen=True)
class _CompiledRoute:
    route: HttpRoute
    pattern: re.Pattern[str] | None  # None for $default
    names: tuple[str, ...]
    rank: tuple[Any, ...]

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.route.method not in ("ANY", method):
            return None
        if self.pattern is None:
            return {}
        found = self.pattern.fullmatch(path)
        if found is None:
            return None
        return {
            name: unquote(value) for name, value in zip(self.names, found.groups(), strict=True)
        }


def _compile(route: HttpRoute) -> _CompiledRoute:
    if route.path == DEFAULT_ROUTE:
        return _CompiledRoute(route, None, (), (1,))
    parts: list[str] = []
    names: list[str] = []
    kinds: list[int] = []  # per segment: 0 literal, 1 variable, 2 greedy variable
    for segment in route.path.strip("/").split("/"):
        variable = re.fullmatch(r"\{([^{}]+?)(\+?)\}", segment)
        if variable is None:
            parts.append(re.escape(segment))
            kinds.append(0)
        elif variable.group(2):
            parts.append("(.+)")
            names.append(variable.group(1))
            kinds.append(2)
        else:
            parts.append("([^/]+)")
            names.append(variable.group(1))
            kinds.append(1)
    pattern = re.compile("/" + "/".join(parts))
    # API Gateway picks the most specific route: literal segments before variables, variables
    # before greedy ones, an exact method before ANY, and $default last of all.
    rank = (0, tuple(kinds), route.method == "ANY")
    return _CompiledRoute(route, pattern, tuple(names), rank)


class RouteTable:
    """The template's routes, matched the way API Gateway matches an HTTP API's routes."""

    def __init__(self, routes: Iterable[HttpRoute]) -> None:
        self._routes = sorted((_compile(route) for route in routes), key=lambda r: r.rank)

    @property
    def routes(self) -> list[HttpRoute]:
        return [compiled.route for compiled in self._routes]

    def match(self, method: str, path: str) -> tuple[HttpRoute, dict[str, str]] | None:
        for compiled in self._routes:
            params = compiled.match(method.upper(), path)
            if params is not None:
                return compiled.route, params
        return None


# --------------------------------------------------------------------------- events


def caller_arn(name: str | None) -> str:
    """The ARN a request runs as: the local account's root, or the X-Local-Caller IAM user."""
    try:
        return local_principal(name).arn
    except ValueError as exc:
        raise ValueError(f"{CALLER_HEADER}: {exc}") from exc


def build_event(
    *,
    method: str,
    target: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    route: HttpRoute,
    path_parameters: dict[str, str],
    user_arn: str,
    key_owner: str | None = None,
    source_ip: str = "127.0.0.1",
    protocol: str = "HTTP/1.1",
    request_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The API Gateway HTTP API (payload format 2.0) event for one request."""
    now = now or datetime.now(UTC)
    request_id = request_id or str(uuid.uuid4())
    split = urlsplit(target)
    raw_path = split.path or "/"
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == CALLER_HEADER.lower():
            continue
        if key == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        merged[key] = f"{merged[key]},{value}" if key in merged else value
    user_id = unique_id_of(user_arn)
    # An API-Key request reaches the routes with the keyed API's Lambda authorizer context, as
    # API Gateway passes it; any other with IAM's (the local default caller, or X-Local-Caller).
    authorizer: dict[str, Any] = (
        {"lambda": {"owner": key_owner}}
        if key_owner is not None
        else {
            "iam": {
                "accessKey": "ASIA" + user_id[4:],
                "accountId": ACCOUNT,
                "callerId": user_id,
                "cognitoIdentity": None,
                "principalOrgId": None,
                "userArn": user_arn,
                "userId": user_id,
            }
        }
    )
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": raw_path,
        "rawQueryString": split.query,
        "headers": merged,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": API_ID,
            "authorizer": authorizer,
            "domainName": merged.get("host", "127.0.0.1"),
            "domainPrefix": merged.get("host", "127.0.0.1").split(".", 1)[0],
            "http": {
                "method": method.upper(),
                "path": unquote(raw_path),
                "protocol": protocol,
                "sourceIp": source_ip,
                "userAgent": merged.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route.route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if split.query:
        params: dict[str, str] = {}
        for name, value in parse_qsl(split.query, keep_blank_values=True):
            params[name] = f"{params[name]},{value}" if name in params else value
        event["queryStringParameters"] = params
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    if body:
        try:
            event["body"] = body.decode("utf-8")
        except UnicodeDecodeError:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
    return event


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


def json_answer(status: int, payload: Any) -> Answer:
    return Answer(status, json.dumps(payload).encode(), [("Content-Type", "application/json")])


def answer_from_result(result: Any) -> Answer:
    """The HTTP response API Gateway makes of a function's payload 2.0 answer: a dict with
    statusCode (headers, cookies, body, isBase64Encoded), or any other JSON value, sent as a
    200 application/json body."""
    if not (isinstance(result, dict) and "statusCode" in result):
        return json_answer(200, result)
    headers = [(str(name), str(value)) for name, value in (result.get("headers") or {}).items()]
    headers.extend(("Set-Cookie", str(cookie)) for cookie in result.get("cookies") or [])
    body = result.get("body")
    if body is None:
        data = b""
    elif not isinstance(body, str):
        data = json.dumps(body).encode()
    elif result.get("isBase64Encoded"):
        data = base64.b64decode(body)
    else:
        data = body.encode("utf-8")
    return Answer(int(result["statusCode"]), data, headers)


NO_ROUTE = json_answer(404, {"status": "FAILURE", "error": "no such route"})
# What API Gateway answers when a Lambda authorizer refuses (deployed: 403, see README).
UNAUTHORIZED = json_answer(401, {"message": "Unauthorized"})
API_KEY_HEADER = "api-key"
# Routes served without auth (the template's `Authorizer: NONE`).
PUBLIC_PATHS = frozenset({"/openapi.json", "/swagger", "/console"})
# The key's owner (`apikey:<name>`), or None for a refused key: the keyed API's authorizer.
Authorize = Callable[[str], "str | None"]
INTERNAL_ERROR = json_answer(500, {"message": "Internal Server Error"})


# --------------------------------------------------------------------------- server


class GatewayServer(BackgroundServer):
    """The HTTP API on a ThreadingHTTPServer, each route dispatched through `invoke`."""

    thread_name = "gateway-http"

    def __init__(
        self,
        routes: Iterable[HttpRoute],
        invoke: Invoke,
        host: str = "127.0.0.1",
        port: int = 0,
        log: Log | None = None,
        authorize: Authorize | None = None,
    ) -> None:
        self.table = RouteTable(routes)
        self.invoke = invoke
        self.authorize = authorize
        super().__init__(host, port)
        self.log = log or (lambda line: None)

    def handle(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        source_ip: str,
        protocol: str,
        request_id: str,
    ) -> Answer:
        path = urlsplit(target).path or "/"
        matched = self.table.match(method, path)
        if matched is None:
            self.log(f"[http]   {method} {path} -> 404 no such route")
            return NO_ROUTE
        route, params = matched
        caller = next((v for k, v in headers if k.lower() == CALLER_HEADER.lower()), None)
        try:
            user_arn = caller_arn(caller)
        except ValueError as exc:
            self.log(f"[http]   {method} {path} -> 400 bad {CALLER_HEADER}")
            return json_answer(400, {"status": "FAILURE", "error": str(exc)})
        key_owner: str | None = None
        if self.authorize is not None and route.path not in PUBLIC_PATHS:
            key = next((v for k, v in headers if k.lower() == API_KEY_HEADER), None)
            if key is not None:
                key_owner = self.authorize(key)
                if key_owner is None:
                    self.log(f"[http]   {method} {path} -> 401 API-Key refused")
                    return UNAUTHORIZED
        event = build_event(
            method=method,
            target=target,
            headers=headers,
            body=body,
            route=route,
            path_parameters=params,
            user_arn=user_arn,
            key_owner=key_owner,
            source_ip=source_ip,
            protocol=protocol,
            request_id=request_id,
        )
        try:
            result = self.invoke(route, event)
        except Exception:
            # API Gateway answers a failed invocation with its own 500; the function's error
            # is in its log (here: the invocation line, and this traceback).
            traceback.print_exc(file=sys.stderr)
            return INTERNAL_ERROR
        try:
            return answer_from_result(result)
        except (TypeError, ValueError) as exc:
            self.log(f"[http]   {route.route_key}: malformed function answer ({exc})")
            return INTERNAL_ERROR


class _BodyTooLargeError(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LocalHttpApi/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the stack logs one line per invocation instead."""

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline(65537).split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY_BYTES:
                    raise _BodyTooLargeError
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise _BodyTooLargeError
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        gateway = cast(GatewayServer, cast(OwnedServer, self.server).owner)
        request_id = base64.b32encode(uuid.uuid4().bytes[:10]).decode().rstrip("=")
        try:
            body = self._read_body()
        except _BodyTooLargeError:
            self.close_connection = True
            answer = json_answer(413, {"message": "Request Entity Too Large"})
        except ValueError:
            self.close_connection = True
            answer = json_answer(400, {"message": "Bad Request"})
        else:
            try:
                answer = gateway.handle(
                    self.command,
                    self.path,
                    list(self.headers.items()),
                    body,
                    source_ip=str(self.client_address[0]),
                    protocol=self.request_version,
                    request_id=request_id,
                )
            except Exception:
                traceback.print_exc(file=sys.stderr)
                answer = INTERNAL_ERROR
        self.send_response(answer.status)
        names = {name.lower() for name, _ in answer.headers}
        for name, value in answer.headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        if "content-type" not in names and answer.body:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer.body)))
        self.send_header("Apigw-Requestid", request_id)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_OPTIONS(self) -> None:
        self._dispatch()


# Set here because the handler is defined after the server class.
GatewayServer.handler_class = _Handler
