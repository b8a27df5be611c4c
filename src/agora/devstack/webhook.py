"""The local stand-in for Slack, PagerDuty and e-mail under `agora up --monitoring`.

Alertmanager's receivers are rendered as webhooks to ``/<receiver name>`` here; every
notification is printed and appended as one JSON line to a file (what the tests read).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def describe(receiver: str, payload: dict[str, Any]) -> str:
    """One console line per notification: receiver, status and each alert's summary."""
    alerts = payload.get("alerts", [])
    parts = [
        f"{a.get('labels', {}).get('severity', '?')} {a.get('labels', {}).get('alertname', '?')}:"
        f" {a.get('annotations', {}).get('summary', '')}"
        for a in alerts
    ]
    return f"alert → {receiver} [{payload.get('status', '?')}] " + "; ".join(parts)


class WebhookReceiver:
    def __init__(self, port: int, log_path: Path) -> None:
        self.port = port
        self.log_path = log_path
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    payload = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    self.send_response(400)
                    self.end_headers()
                    return
                receiver.record(self.path.strip("/") or "default", payload)
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: record() already prints one line per notification."""

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="alert-webhook", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def record(self, receiver: str, payload: dict[str, Any]) -> None:
        line = json.dumps({"received_at": time.time(), "receiver": receiver, "payload": payload})
        with self._lock, self.log_path.open("a") as out:
            out.write(line + "\n")
        print(describe(receiver, payload), file=sys.stderr, flush=True)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
