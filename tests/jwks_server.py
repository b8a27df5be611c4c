"""A stand-in for auth's JWKS endpoint on a free port: publishes the given key, counts the
fetches, and answers 500 while ``failing`` is set."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from agora.security.keys import SigningKey

JWKS_PATH = "/api/v1/auth/.well-known/jwks.json"


class JwksServer:
    def __init__(self, key: SigningKey) -> None:
        self.document = json.dumps({"keys": [key.public_jwk()]}).encode()
        self.failing = False
        self.requests = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                status, body = (500, b"{}") if owner.failing else (200, owner.document)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}{JWKS_PATH}"


@contextmanager
def jwks_server(key: SigningKey) -> Iterator[JwksServer]:
    server = JwksServer(key)
    threading.Thread(target=server.http.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.http.shutdown()
        server.http.server_close()
