"""A real HTTP index on 127.0.0.1 for plan tests: crafted PEP 691/503 pages, faults on demand."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

JSON_TYPE = "application/vnd.pypi.simple.v1+json"


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    fail_first: int = 0  # answer 503 this many times first


@dataclass
class IndexServer:
    url: str = ""  # simple root, ending in /
    routes: dict[str, Route] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    requests: list[dict[str, str]] = field(default_factory=list)
    login: tuple[str, str] | None = None  # basic auth every request must carry

    def project_json(self, name: str, files: list[dict[str, object]], **headers: str) -> None:
        body = json.dumps({"meta": {"api-version": "1.1"}, "name": name, "files": files})
        self.routes[f"/simple/{name}/"] = Route(
            body=body.encode(), headers={"Content-Type": JSON_TYPE, **headers}
        )

    def project_html(self, name: str, links: list[str]) -> None:
        anchors = "".join(f"{link}<br>\n" for link in links)
        body = f"<!DOCTYPE html><html><body><h1>Links for {name}</h1>{anchors}</body></html>"
        self.routes[f"/simple/{name}/"] = Route(
            body=body.encode(), headers={"Content-Type": "text/html; charset=utf-8"}
        )

    def raw(self, name: str, route: Route) -> None:
        self.routes[f"/simple/{name}/"] = route


def file_entry(filename: str, sha: str = "ab" * 32, **extra: object) -> dict[str, object]:
    return {
        "filename": filename,
        "url": f"../../files/{filename}",
        "hashes": {"sha256": sha},
        **extra,
    }


@contextmanager
def serve_index() -> Iterator[IndexServer]:
    state = IndexServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits[self.path] = state.hits.get(self.path, 0) + 1
            state.requests.append({"path": self.path, **dict(self.headers.items())})
            route = state.routes.get(self.path, Route(404, b"not found"))
            if state.login is not None:
                token = base64.b64encode(":".join(state.login).encode()).decode()
                if self.headers.get("Authorization") != f"Basic {token}":
                    route = Route(401, b"login required", {"WWW-Authenticate": "Basic"})
            if state.hits[self.path] <= route.fail_first:
                wait = {k: v for k, v in route.headers.items() if k == "Retry-After"}
                route = Route(503, b"try later", wait)
            etag = route.headers.get("ETag")
            if etag and self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return
            self.send_response(route.status)
            for key, value in route.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(route.body)))
            self.end_headers()
            self.wfile.write(route.body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/simple/"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
