"""A forward HTTP proxy for tests, run as a process of its own:

    python forward_proxy.py ORIGIN_PORT LOG

It listens on 127.0.0.1 (a free port, printed as the first line of its stdout), appends the
request line of every request it receives to LOG, and sends everything to the server on
127.0.0.1:ORIGIN_PORT whatever host the request names, so a URL whose host does not resolve
(``https://sdists.invalid/...``) is reachable through the proxy only. ``CONNECT`` (what a client
sends for an https URL through HTTPS_PROXY) opens a tunnel; an absolute-form request (``GET
http://host/path``, for HTTP_PROXY) is forwarded in origin form with ``Connection: close``.
"""

from __future__ import annotations

import contextlib
import select
import socket
import socketserver
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

ORIGIN = ("127.0.0.1", int(sys.argv[1]))
LOG = Path(sys.argv[2])
_LOG_LOCK = threading.Lock()


def _pipe(one: socket.socket, other: socket.socket) -> None:
    """Copy bytes both ways until either side closes."""
    sockets = [one, other]
    while True:
        readable, _, _ = select.select(sockets, [], [], 60)
        if not readable:
            return
        for source in readable:
            data = source.recv(1 << 16)
            if not data:
                return
            (other if source is one else one).sendall(data)


class _Proxy(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        request_line = self.rfile.readline().decode("latin-1").rstrip("\r\n")
        headers = []
        while (line := self.rfile.readline()) not in (b"\r\n", b"\n", b""):
            headers.append(line)
        with _LOG_LOCK, LOG.open("a", encoding="utf-8") as log:
            log.write(request_line + "\n")
        method, target, version = request_line.split(" ", 2)
        with socket.create_connection(ORIGIN, timeout=60) as origin:
            if method == "CONNECT":
                self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                self.wfile.flush()
            else:
                parts = urlsplit(target)
                path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
                kept = [
                    h
                    for h in headers
                    if not h.lower().startswith((b"connection:", b"proxy-", b"keep-alive:"))
                ]
                head = f"{method} {path} {version}\r\n".encode("latin-1")
                origin.sendall(head + b"".join(kept) + b"Connection: close\r\n\r\n")
            _pipe(self.connection, origin)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main() -> None:
    with _Server(("127.0.0.1", 0), _Proxy) as server:
        print(server.server_address[1], flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()


if __name__ == "__main__":
    main()
