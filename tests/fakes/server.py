"""A small threaded HTTP server with routes, for the fake ticket systems."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

__all__ = ["FakeServer", "Reply", "Request"]


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class Reply:
    status: int
    body: Any = None


Handler = Callable[[Request], Reply]


class FakeServer:
    """Routes ``(method, path pattern)`` to handlers; ``{name}`` in a pattern is a path
    parameter. Every request is kept in ``requests``; an unknown path answers 404, a known
    path with another method 405."""

    def __init__(self, port: int = 0) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        owner = self

        class _Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                owner._dispatch(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
        self.routes.append((method, re.compile(f"^{regex}$"), handler))

    def _dispatch(self, http: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(http.path)
        length = int(http.headers.get("Content-Length") or 0)
        request = Request(
            method=http.command,
            path=parts.path,
            query=parse_qs(parts.query),
            headers={k.lower(): v for k, v in http.headers.items()},
            body=http.rfile.read(length) if length else b"",
        )
        with self._lock:
            self.requests.append(request)
        reply = Reply(404, {"error": f"no route {request.method} {request.path}"})
        known_path = False
        for method, pattern, handler in self.routes:
            match = pattern.match(request.path)
            if match is None:
                continue
            known_path = True
            if method == request.method:
                request.params = match.groupdict()
                try:
                    with self._lock:
                        reply = handler(request)
                except (ValueError, KeyError, TypeError) as exc:
                    reply = Reply(400, {"error": f"malformed request: {exc}"})
                break
        else:
            if known_path:
                reply = Reply(405, {"error": f"{request.method} is not allowed here"})
        body = b"" if reply.body is None else json.dumps(reply.body).encode()
        http.send_response(reply.status)
        if body:
            http.send_header("Content-Type", "application/json")
        http.send_header("Content-Length", str(len(body)))
        http.end_headers()
        http.wfile.write(body)

    def calls(self, method: str, pattern: str) -> list[Request]:
        regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"[^/]+", pattern) + "$")
        return [r for r in self.requests if r.method == method and regex.match(r.path)]

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
